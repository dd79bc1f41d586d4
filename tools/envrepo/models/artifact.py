"""What a model is as an artifact, without the registry: its files in one reproducible tar
(sorted, owner root, time 0), the annotations a run gives it, its versions from tags, and a
tar unpacked only where it belongs."""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.paths import confined_tree

ARTIFACT_TYPE = "application/vnd.envrepo.model.v1"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
TITLE = "org.opencontainers.image.title"
PREFIX = "dev.envrepo.model."
REPOSITORY = "models/{name}"
NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
VERSION_TAG = re.compile(r"^v([1-9][0-9]*)$")
# What a run's output folder holds besides its model: envrepo's record of the run and its log.
RUN_FILES = ("run.json", "run.log")


@dataclass(frozen=True)
class Reference:
    name: str
    version: int | None


def repository(name: str) -> str:
    return REPOSITORY.format(name=name)


def checked_name(name: str) -> str:
    if not NAME.match(name):
        raise EnvrepoError(
            Problem(
                name,
                "NAME",
                "is not a model name; use lower-case letters, digits and . _ - between them",
            )
        )
    return name


def parse(text: str) -> Reference:
    """NAME or NAME@V."""
    name, at, version = text.partition("@")
    checked_name(name)
    if not at:
        return Reference(name, None)
    if not version.isdigit() or int(version) < 1:
        raise EnvrepoError(Problem(text, "", "write NAME@V with V a version number, such as @2"))
    return Reference(name, int(version))


def versions(tags: Iterable[str]) -> list[int]:
    """The model versions the registry's tags record, in order."""
    return sorted(int(found[1]) for tag in tags if (found := VERSION_TAG.match(tag)))


def version_tag(version: int) -> str:
    return f"v{version}"


def members(source: Path, run: bool) -> list[tuple[str, Path]]:
    """The files and folders of the model, by their name in the tar: a file or folder under
    its own name; a run's output folder's contents at the top, without the run's record and
    log. Links, devices and anything leading out are refused."""
    shown = str(source)
    if source.is_symlink() or not source.exists():
        raise EnvrepoError(Problem(shown, "", "is not a file or folder here (links are refused)"))
    leaks = list(confined_tree(source, source, shown))
    if leaks:
        raise EnvrepoError(*leaks)
    links = [path for path in source.rglob("*") if path.is_symlink()]
    if links:
        raise EnvrepoError(
            Problem(str(links[0]), "", "is a link; a model holds files and folders only")
        )
    if source.is_file():
        return [(source.name, source)]
    top = PurePosixPath(".") if run else PurePosixPath(source.name)
    found = [] if run else [(source.name, source)]
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if run and len(relative.parts) == 1 and relative.name in RUN_FILES:
            continue
        found.append(((top / relative.as_posix()).as_posix(), path))
    if not any(path.is_file() for _, path in found):
        raise EnvrepoError(Problem(shown, "", "holds no file; give the model's file or folder"))
    return found


def write_tar(entries: Sequence[tuple[str, Path]], out: BinaryIO) -> None:
    """The entries as a tar that depends on their names and bytes alone."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for name, path in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.mode, info.size = 0o644, path.stat().st_size
                with path.open("rb") as handle:
                    archive.addfile(info, handle)


def unpack(archive: BinaryIO, target: Path) -> list[str]:
    """The tar's files and folders written under `target` (which exists and is empty); only
    those, each inside it; the files' names."""
    written = []
    with tarfile.open(fileobj=archive, mode="r|") as opened:
        for member in opened:
            name = PurePosixPath(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                raise EnvrepoError(
                    Problem(member.name, "", "is no plain file or folder inside the model; refused")
                )
            path = target / name
            if member.isdir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = opened.extractfile(member)
            assert handle is not None  # a regular file
            with path.open("wb") as out:
                while chunk := handle.read(1 << 20):
                    out.write(chunk)
            written.append(name.as_posix())
    return written


def provenance(
    name: str, record: Mapping[str, Any] | None, metrics: Mapping[str, Any]
) -> dict[str, str]:
    """What the manifest says of the model: its name, and for a run's model, the run's
    environment, image digest, commit, command and metrics. Nothing of time or place, so that
    the same content is the same manifest."""
    found = {TITLE: name, f"{PREFIX}name": name}
    if record is not None:
        environment = record["environment"]
        version = environment.get("version")
        found[f"{PREFIX}environment"] = environment["name"] + (f"@{version}" if version else "")
        found[f"{PREFIX}environment.hash"] = environment["hash"]
        if environment.get("digest"):
            found[f"{PREFIX}environment.digest"] = environment["digest"]
        commit = (record.get("source") or {}).get("commit")
        if commit:
            found[f"{PREFIX}commit"] = commit
        found[f"{PREFIX}command"] = json.dumps(record["command"])
    if metrics:
        found[f"{PREFIX}metrics"] = json.dumps(dict(metrics), sort_keys=True)
    return found


def run_record(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run record of a run's output folder, and its metrics.json when it has one; an
    error for a folder that is no finished, successful run."""
    path = folder / "run.json"
    if not path.is_file():
        raise EnvrepoError(
            Problem(
                str(folder),
                "--from-run",
                "has no run.json; give the output folder of an envrepo run",
            )
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EnvrepoError(
            Problem(str(path), "", f"cannot be read ({error}); run it again")
        ) from None
    if not isinstance(record, dict) or record.get("exit_code") != 0:
        raise EnvrepoError(
            Problem(
                str(path),
                "exit_code",
                "the run did not succeed; register the model of a run that did",
            )
        )
    metrics: dict[str, Any] = {}
    found = folder / "metrics.json"
    if found.is_file():
        try:
            loaded = json.loads(found.read_text(encoding="utf-8"))
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            metrics = {k: v for k, v in loaded.items() if isinstance(v, (int, float, str, bool))}
    return record, metrics
