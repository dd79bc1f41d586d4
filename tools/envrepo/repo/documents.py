"""The JSON documents envrepo keeps (build records, run records), each read and written one
way: checked against the schema the package ships for it, written whole or not at all."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.files import write_text
from envrepo.repo.schema import violations


def now() -> str:
    """The one clock of every document: UTC, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write(path: Path, document: Mapping[str, Any], schema_name: str) -> Path:
    """`document` at `path`. One that breaks its own schema is a bug in envrepo: it is never
    written for a reader to trip over."""
    problems = violations(document, schema_name, str(path))
    if problems:
        raise AssertionError(f"envrepo wrote a document its schema refuses: {problems[0]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def parse(path: Path) -> object:
    """What `path` holds as JSON, or None when it is not JSON."""
    try:
        found: object = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return found


def not_a(path: Path, kind: str, remedy: str) -> EnvrepoError:
    return EnvrepoError(Problem(str(path), "", f"is not a {kind}; {remedy}"))


def checked(document: dict[str, Any], path: Path, schema_name: str, remedy: str) -> dict[str, Any]:
    """`document` when its schema holds; else every problem, then `remedy`."""
    problems = violations(document, schema_name, str(path))
    if problems:
        raise EnvrepoError(*problems, f"{path}: {remedy}")
    return document


def read(path: Path, kind: str, schema_name: str, remedy: str) -> dict[str, Any]:
    """The `kind` document at `path`, checked against its schema."""
    found = parse(path)
    if not isinstance(found, dict):
        raise not_a(path, kind, remedy)
    return checked(found, path, schema_name, remedy)
