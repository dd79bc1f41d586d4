"""What scripts take from a published environment: its image by digest (`resolve`), and its
folder as it was published (`download`), checked against the hash the index records."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path, PurePosixPath

from envrepo.consume.lockfile import Pins
from envrepo.errors import EnvrepoError, Problem
from envrepo.index.read import Index
from envrepo.index.reference import Reference, release
from envrepo.repo.files import create_folder


def resolve(pins: Pins, wanted: Reference, index: Index | None) -> str:
    """`registry/name@sha256:...` of NAME[@VERSION]: the pin when it is pinned at that
    version, else the index."""
    pinned = pins.pins.get(wanted.name)
    if pinned is not None and (not wanted.at or wanted.number == pinned.version):
        return pinned.image
    if index is None:
        raise EnvrepoError(
            Problem(str(wanted), "", "is not pinned here; pass --index, or envrepo pin it first")
        )
    return str(release(index.environment(wanted.name), wanted)["image"])


def download(index: Index, wanted: Reference, target: Path) -> list[str]:
    """The environment's folder at that version into `target` (new or empty), exactly as
    published; refused, with nothing written, when the snapshot does not have the recorded
    hash or holds anything but plain files inside the folder. The files written."""
    if not wanted.at:
        raise EnvrepoError(
            Problem(str(wanted), "", "give NAME@VERSION: download takes one version")
        )
    entry = release(index.environment(wanted.name), wanted)
    path, recorded = entry["folder"]["path"], entry["folder"]["sha256"]
    data = index.read_bytes(path)
    if data is None:
        raise EnvrepoError(f"{index.location}/{path}: is missing; the index is incomplete")
    if hashlib.sha256(data).hexdigest() != recorded:
        raise EnvrepoError(
            f"{index.location}/{path}: its sha256 is not the {recorded[:12]}… the index records "
            "for it; the snapshot was changed after it was published: do not use it"
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise EnvrepoError(f"-d {target}: is not an empty folder; give a new or empty one")
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = [m for m in archive.getmembers() if m.type != tarfile.XGLTYPE]
        # The environment's folder: what holds every file (git archive names its parents too).
        parents = [PurePosixPath(m.name).parent.as_posix() for m in members if not m.isdir()]
        top = PurePosixPath(os.path.commonpath(parents)) if parents else PurePosixPath()
        for member in members:
            inside = PurePosixPath(member.name)
            if member.isdir():
                continue
            if (
                not member.isfile()
                or inside.is_absolute()
                or ".." in inside.parts
                or top not in inside.parents
            ):
                raise EnvrepoError(
                    f"{index.location}/{path}: {member.name} is not a plain file of the "
                    "environment's folder; the snapshot is refused"
                )
            handle = archive.extractfile(member)
            files[inside.relative_to(top).as_posix()] = handle.read() if handle else b""
    if target.exists():
        target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)
    create_folder(target, files)
    return sorted(files)
