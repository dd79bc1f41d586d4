"""What a lock is asked, the same for every locker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from envrepo.lock import sdists
from envrepo.repo.spec import Spec

# (spec, its ancestors, the pins with only source, the options that find their files, the
# repository's registry, a scratch folder, the lock's name as shown): the wheels it built.
WheelBuilder = Callable[
    [Spec, Sequence[Spec], Sequence[sdists.Source], Sequence[str], str | None, Path, str],
    list[Path],
]


@dataclass(frozen=True)
class Request:
    """What the resolver is asked, and how a user would change it."""

    upgrade_all: bool = False
    upgrade: tuple[str, ...] = ()
    registry: str | None = None  # the repository's own registry: its credentials go only there
    # What builds the wheels of what is published only as source (lock --build-wheels): the
    # image stage's, handed in, since building needs the environment's base image.
    build_wheels: WheelBuilder | None = None
