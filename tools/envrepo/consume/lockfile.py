"""envrepo.lock: a consumer repository's pins, one per environment. A pin binds everything
that names the environment's image (version, spec hash, manifest digest and one per platform,
commit, first-published time, and the index it came from), so that a check can tell a newer
version from an image that changed under the same version."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from envrepo.errors import EnvrepoError
from envrepo.repo import schemas
from envrepo.repo.files import write_text
from envrepo.repo.schema import violations

LOCK_FILE = "envrepo.lock"
FORMAT = 1


@dataclass(frozen=True)
class Pin:
    name: str
    version: int
    hash: str
    image: str
    digest: str
    platforms: dict[str, str]
    commit: str
    created: str
    index: str

    @property
    def repository(self) -> str:
        """The image's repository: <registry>/<name>."""
        return self.image.split("@", 1)[0]


@dataclass(frozen=True)
class Pins:
    pins: dict[str, Pin] = field(default_factory=dict)


def from_release(name: str, entry: dict[str, Any], index: str) -> Pin:
    """A pin of one release of a published environment's document."""
    return Pin(
        name=name,
        version=int(entry["number"]),
        hash=str(entry["hash"]),
        image=str(entry["image"]),
        digest=str(entry["digest"]),
        platforms=dict(entry.get("platforms") or {}),
        commit=str(entry["commit"]),
        created=str(entry["releaseTimestamp"]),
        index=index,
    )


def read(root: Path) -> Pins:
    path = root / LOCK_FILE
    if not path.is_file():
        return Pins()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise EnvrepoError(f"{LOCK_FILE}: is not JSON; restore it from git, or pin again") from None
    problems = violations(document, schemas.CONSUMER_LOCK, LOCK_FILE)
    if problems:
        raise EnvrepoError(*problems)
    return Pins({name: Pin(name=name, **pin) for name, pin in document["pins"].items()})


def write(root: Path, pins: Pins) -> Path:
    document = {
        "format": FORMAT,
        "pins": {
            name: {k: v for k, v in asdict(pin).items() if k != "name"}
            for name, pin in sorted(pins.pins.items())
        },
    }
    path = root / LOCK_FILE
    write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
