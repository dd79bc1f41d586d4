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
RUN_RECORD = "run-record.schema.json"
DEPLOYMENT = "deployment.schema.json"


@cache
def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(text(name))
    return schema


# Where `envrepo init` puts a copy of the schemas an editor reads for a repository's own files
# (its specs' and envrepo.yaml's `$schema` comments point here); `envrepo validate` keeps the
# copy at the installed envrepo's schemas.
COPY_FOLDER = ".envrepo-schemas"
COPIED = (ENVIRONMENT, CONFIG)


def text(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
