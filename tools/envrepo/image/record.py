"""The build record: what a build found or made, written for each environment (JSON Schema:
build-record.schema.json) and read back by the next build of its hash and by publish."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from envrepo import __version__
from envrepo.image.checks import Listing
from envrepo.repo import documents, schemas

Status = Literal["built", "cached"]
Tests = list[dict[str, Any]]
REMEDY = "remove it, build again"


@dataclass(frozen=True)
class BuildRecord:
    name: str
    hash: str
    status: Status
    image: str
    digest: str | None
    tags: list[str]
    commit: str | None
    dirty: bool
    base: str
    packages: Listing
    platform: str
    tests: Tests
    tests_digest: str
    image_id: str | None
    log: str | None
    durations: dict[str, float]
    created: str
    size: int | None
    # The version of envrepo that wrote the record.
    envrepo: str = __version__


def path(folder: Path, name: str, spec_hash: str) -> Path:
    return folder / f"{name}-{spec_hash[:12]}.json"


def write(folder: Path, record: BuildRecord) -> Path:
    return documents.write(
        path(folder, record.name, record.hash), asdict(record), schemas.BUILD_RECORD
    )


def passed_before(
    folder: Path, name: str, spec_hash: str, image_id: str, tested: str
) -> tuple[Tests, Listing] | None:
    """The tests and package listing of the record of this hash, when that record says this
    very image passed these very tests; a record from before package listings had apt and
    conda is no answer, so its tests run again."""
    earlier = path(folder, name, spec_hash)
    if not earlier.is_file():
        return None
    known = documents.parse(earlier)
    if not isinstance(known, dict):
        return None
    if (known.get("image_id"), known.get("tests_digest")) != (image_id, tested):
        return None
    listing = known.get("packages")
    if not isinstance(listing, dict) or set(listing) != {"apt", "conda", "pip"}:
        return None
    return list(known.get("tests") or []), dict(listing)


def read_all(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every build record in `folder`, oldest first; one that is not a JSON object naming its
    environment stops the caller with one line. Each is checked against its schema when it
    is chosen, since records of environments no longer in the tree are only skipped."""
    paths = (
        sorted(
            (p for p in folder.glob("*.json") if not p.name.startswith(".")),
            key=lambda p: (p.stat().st_mtime, p.name),
        )
        if folder.is_dir()
        else []
    )
    records = []
    for found_path in paths:
        found = documents.parse(found_path)
        if not isinstance(found, dict) or not isinstance(found.get("name"), str):
            raise documents.not_a(found_path, "build record", REMEDY)
        records.append((found_path, found))
    return records


def checked(found_path: Path, found: dict[str, Any]) -> dict[str, Any]:
    """`found` when its schema holds, else one line per problem and what to do."""
    return documents.checked(
        found, found_path, schemas.BUILD_RECORD, f"build {found.get('name')} again to write it anew"
    )
