"""What a build takes from the lock stage: an environment with its locks read and parsed once,
for the image's target, and its base resolved as far as the files say. The build stages take
this value and never read a lock themselves."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import parse_wheel_filename

from envrepo.errors import EnvrepoError, Problem
from envrepo.hashing import SpecHash
from envrepo.inputs import requirements
from envrepo.inputs.sources import lock_inputs, wheel_files
from envrepo.lock.files import split
from envrepo.lock.pip import FROM_INDEX, entries
from envrepo.repo.paths import read_inside
from envrepo.repo.platforms import PLATFORMS
from envrepo.repo.spec import Spec

_HASH = re.compile(r"--hash=(\S+)")


@dataclass(frozen=True)
class PipEntry:
    """One distribution of the pip lock: its exact pin, sorted hashes, the entry as the
    lock writes it (what the installer is given), and the spec's index it came from (None:
    the default index, or the private wheels)."""

    name: str
    version: str
    hashes: tuple[str, ...]
    text: str
    index: str | None = None


@dataclass(frozen=True)
class CondaFile:
    url: str
    sha256: str


@dataclass(frozen=True)
class Locked:
    """An environment ready to build: its spec, hash and parent; the `base.image` reference at
    the digest its lock recorded; the pip lock's entries for the image's platform and python
    (markers applied) and the names the environment asks for itself; the conda lock's files
    for the image's platform. Each lock is also named as users see it, for messages."""

    spec: Spec
    spec_hash: SpecHash
    parent: Spec | None
    base_image: str | None = None
    pip: tuple[PipEntry, ...] = ()
    pip_lock: str | None = None
    direct: frozenset[str] = frozenset()
    conda: tuple[CondaFile, ...] = ()
    conda_lock: str | None = None

    @property
    def installs_pip(self) -> bool:
        """Whether envrepo installs pip packages into the environment: it has a pip lock and
        is not user managed."""
        return self.pip_lock is not None


def _lock_text(spec: Spec, field: str, lock: Path) -> str:
    """The body of `lock`; a clear error naming the command to run when it is missing."""
    if not os.path.lexists(lock):
        raise EnvrepoError(
            Problem(
                spec.spec_display, field, f"{lock.name} is missing; run envrepo lock {spec.name}"
            )
        )
    shown = f"{spec.display}/{lock.relative_to(spec.folder).as_posix()}"
    return split(read_inside(lock, spec.folder, shown).decode("utf-8", errors="replace"))[1]


def _pip_entries(spec: Spec, body: str, shown: str) -> tuple[PipEntry, ...]:
    target = spec.target.markers()
    found = []
    for first, text in entries(body):
        try:
            requirement: Requirement | None = Requirement(first)
        except InvalidRequirement:
            requirement = None
        if requirement is None or not requirements.is_exact(requirement):
            raise EnvrepoError(
                Problem(
                    shown,
                    "",
                    f"{first!r} is not an exact pin as envrepo lock writes them; "
                    f"run envrepo lock {spec.name} --all",
                )
            )
        if requirement.marker is not None and not requirement.marker.evaluate(target):
            continue
        version = str(next(iter(requirement.specifier)).version)
        hashes = tuple(sorted(_HASH.findall(text)))
        index = next(
            (x.removeprefix(FROM_INDEX) for x in text.splitlines() if x.startswith(FROM_INDEX)),
            None,
        )
        if index is not None and all(i.name != index for i in spec.indexes):
            raise EnvrepoError(
                Problem(
                    shown,
                    requirement.name,
                    f"comes from index {index}, which {spec.spec_display} does not name; "
                    f"run envrepo lock {spec.name}",
                )
            )
        found.append(PipEntry(requirement.name, version, hashes, text, index))
    return tuple(found)


def _conda_files(body: str, subdir: str) -> tuple[CondaFile, ...]:
    """Every package the conda lock names for `subdir`."""
    files: list[CondaFile] = []
    current = None
    for line in body.splitlines():
        if line.startswith("# platform:"):
            current = line.split(":", 1)[1].strip()
        elif current == subdir and "#sha256=" in line and not line.startswith("#"):
            url, _, digest = line.partition("#sha256=")
            files.append(CondaFile(url.strip(), digest.strip()))
    return tuple(files)


def _direct(spec: Spec) -> frozenset[str]:
    """The packages the environment names itself, canonical: its pip file's and its private
    wheels' (each of those is required as it is)."""
    names = {
        requirements.canonical(parse_wheel_filename(path.name)[0]) for path in wheel_files(spec)
    }
    if spec.pip is not None:
        parsed = requirements.parse(spec.folder / spec.pip, spec.folder, Path(spec.display))
        names.update(requirements.canonical(r.name) for r in parsed.requirements)
    return frozenset(names)


def base_image(spec: Spec) -> str | None:
    """The `base.image` a build starts from: as the spec names it when that is by digest,
    else at the digest its lock recorded."""
    if spec.base.kind == "published":
        from envrepo.lock import published

        lock = next(i for i in lock_inputs(spec) if i.field == "published")
        return published.image(spec, lock)
    if spec.base.kind != "image":
        return None
    item = next((i for i in lock_inputs(spec) if i.field == "image"), None)
    if item is None:
        return spec.base.value
    return _lock_text(spec, "base.image", item.lock).strip().splitlines()[0]


def read_locked(spec: Spec, spec_hash: SpecHash, parent: Spec | None) -> Locked:
    """`spec` with its locks read, for the first of its platforms (the one images are built
    for)."""
    found = Locked(spec, spec_hash, parent, base_image=base_image(spec))
    for item in lock_inputs(spec):
        shown = item.lock_display(spec)
        if item.field == "pip" and not spec.user_managed:
            pip = _pip_entries(spec, _lock_text(spec, "pip", item.lock), shown)
            found = replace(found, pip=pip, pip_lock=shown, direct=_direct(spec))
        elif item.field == "conda":
            subdir = PLATFORMS[spec.platforms[0]].conda_subdir
            conda = _conda_files(_lock_text(spec, "conda", item.lock), subdir)
            found = replace(found, conda=conda, conda_lock=shown)
    return found
