"""A conda channel the tests build themselves, indexed by rattler, served by file://."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from pathlib import Path

from rattler.index import index_fs


def make_conda_package(
    channel: Path,
    name: str,
    version: str,
    depends: tuple[str, ...] = (),
    subdir: str = "noarch",
    files: dict[str, bytes] | None = None,
) -> Path:
    """A conda package; `files` (path in the prefix → bytes) are installed executable."""
    files = files or {}
    folder = channel / subdir
    folder.mkdir(parents=True, exist_ok=True)
    index = {
        "name": name,
        "version": version,
        "build": "0",
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "timestamp": 1_700_000_000_000,
        "license": "MIT",
    }
    if subdir == "noarch":
        index["noarch"] = "generic"
    paths = [
        {
            "_path": path,
            "path_type": "hardlink",
            "size_in_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for path, data in sorted(files.items())
    ]
    members = {
        "info/index.json": json.dumps(index).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}).encode(),
        "info/files": "".join(f"{path}\n" for path in sorted(files)).encode(),
        **files,
    }
    path = folder / f"{name}-{version}-0.tar.bz2"
    with tarfile.open(path, "w:bz2") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o755 if member in files else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def index_channel(channel: Path) -> str:
    (channel / "linux-64").mkdir(parents=True, exist_ok=True)
    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel))
    return channel.resolve().as_uri()
