"""Deprecation records: `deprecations/<name>.yaml` in the repository, one list per
environment, appended to by `envrepo deprecate` and reviewed like any change; publish
carries them into the index."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from envrepo.errors import EnvrepoError, Problem
from envrepo.publish.index import Deprecation
from envrepo.repo import schemas
from envrepo.repo.config import Repository
from envrepo.repo.files import exclusive, write_text
from envrepo.repo.schema import violations
from envrepo.repo.yamlio import load_yaml, parse_yaml, read_text

FOLDER = "deprecations"
HEADER = "# Written by envrepo deprecate; envrepo publish carries these into the index.\n"
_REFERENCE = re.compile(r"^(?P<name>[^@]+)(?:@(?P<version>[1-9][0-9]*))?$")


def _path(repo: Repository, name: str) -> Path:
    return repo.root / FOLDER / f"{name}.yaml"


def read_all(repo: Repository) -> list[Deprecation]:
    """Every record of the repository, file by file; a file that is wrong stops the publish
    with its problems."""
    found: list[Deprecation] = []
    folder = repo.root / FOLDER
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        shown = repo.display(path)
        document = load_yaml(path, shown) or []
        problems = violations(document, schemas.DEPRECATIONS, shown)
        if problems:
            raise EnvrepoError(*problems)
        found += [
            Deprecation(
                path.stem,
                item.get("version"),
                item["reason"],
                item.get("replacement"),
                str(item["date"]),
            )
            for item in document
        ]
    return found


def record(
    repo: Repository, reference: str, reason: str, replacement: str | None, known: set[str]
) -> Path:
    """Append a record for NAME[@VERSION] (an environment of `known`) to its file."""
    matched = _REFERENCE.match(reference)
    if matched is None or matched.group("name") not in known:
        raise EnvrepoError(
            Problem(
                reference,
                "",
                "is not NAME or NAME@VERSION of an environment here; see envrepo list",
            )
        )
    if replacement is not None and not re.match(r"^[^@]+@[1-9][0-9]*$", replacement):
        raise EnvrepoError(Problem("--replacement", "", f"{replacement!r} is not NAME@VERSION"))
    if not reason.strip():
        raise EnvrepoError(Problem("--reason", "", "is empty; say why it should not be used"))
    name, version = matched.group("name"), matched.group("version")
    entry = {
        **({"version": int(version)} if version else {}),
        "reason": reason.strip(),
        **({"replacement": replacement} if replacement else {}),
        "date": datetime.date.today().isoformat(),
    }
    path = _path(repo, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_name(f".{path.name}.lock")):
        text = read_text(path, repo.display(path)) if path.is_file() else HEADER
        # JSON strings are YAML strings: whatever the reason says stays one scalar.
        lines = [
            f"{'- ' if i == 0 else '  '}{key}: {json.dumps(value, ensure_ascii=False)}"
            for i, (key, value) in enumerate(entry.items())
        ]
        text = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
        problems = violations(parse_yaml(text, repo.display(path)), schemas.DEPRECATIONS, reference)
        if problems:
            raise EnvrepoError(*problems)
        write_text(path, text)
    return path
