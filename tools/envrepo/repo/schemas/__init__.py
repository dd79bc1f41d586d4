"""The JSON Schemas shipped in the package, read with importlib.resources."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

ENVIRONMENT = "environment.schema.json"
CONFIG = "envrepo.schema.json"
BUILD_RECORD = "build-record.schema.json"
DEPRECATIONS = "deprecations.schema.json"
INDEX = "index.schema.json"
INDEX_ENVIRONMENT = "index-environment.schema.json"
INDEX_VERSION = "index-version.schema.json"
CONSUMER_LOCK = "consumer-lock.schema.json"


@cache
def load(name: str) -> dict[str, Any]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
