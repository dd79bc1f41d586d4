"""Image layers made on the host: one tar per installed distribution, and the virtual
environment's skeleton, cached so that a layer is made once.

A layer holds only its files (uid 0, mtime 0, sorted), so the same package gives the same
layer in every environment, and a changed pin makes one new layer. A distribution's layer is
keyed by its lock entry and the image's target, so a rebuild finds it without installing or
compiling anything.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
import tarfile
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from packaging.utils import canonicalize_name

from envrepo.engine.docker import Log
from envrepo.image.bytecode import pyc_path, wanted
from envrepo.repo.digest import json_sha256
from envrepo.repo.files import cache_dir
from envrepo.repo.spec import ENV_PREFIX

PREFIX = PurePosixPath(ENV_PREFIX)
LAYER_FORMAT = 4  # 3: keyed by its lock entry, with bytecode; 4: without uv_cache.json
WHITEOUT = ".wh."  # a layer's mark that a path of the layers below is gone
UV_FILES = {".lock"}  # uv's own lock on the --target folder, not part of the environment
MAX_PACKAGE_LAYERS = 100  # Docker allows 127 layers in all; the rest share one layer
COPY_BUFFER = 1 << 20  # tarfile copies 16 KiB at a time by default; layers are hundreds of MB


@dataclass(frozen=True)
class Package:
    """A locked distribution that gets a layer of its own, and that layer's cache key, known
    before anything is installed."""

    name: str
    version: str
    key: str
    # Files of another version of it that the base image has (paths in the image): the layer
    # removes them, so that the image holds one version of each distribution.
    replaces: tuple[str, ...] = field(default=(), kw_only=True)


@dataclass(frozen=True)
class Layer:
    """A layer tar on disk: its diff ID (sha256 of the tar), size, what made it, and whether
    this run made it (else it came from the cache)."""

    path: Path
    diff_id: str
    size: int
    created_by: str
    made: bool = False


def _info(name: str, mode: int, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _parents(paths: Iterable[str]) -> list[str]:
    folders: set[str] = set()
    for path in paths:
        parent = PurePosixPath(path).parent
        while str(parent) not in (".", "/", ""):
            folders.add(str(parent))
            parent = parent.parent
    return sorted(folders)


def write_layer(
    out: IO[bytes],
    files: dict[str, Path],
    links: dict[str, str] | None = None,
    extra: dict[str, bytes] | None = None,
    folders: Iterable[str] = (),
    removed: Iterable[str] = (),
) -> None:
    """A tar of `files` (path in the image → file on the host), symlinks, small files, empty
    folders, and whiteouts of `removed` paths that the layers below have."""
    links = links or {}
    extra = {
        **{
            posixpath.join(posixpath.dirname(p), WHITEOUT + posixpath.basename(p)): b""
            for p in removed
        },
        **(extra or {}),
    }
    names = sorted({*files, *links, *extra})
    with tarfile.TarFile(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUFFER
    ) as tar:
        for folder in sorted({*_parents(names), *_parents(f"{f}/x" for f in folders)}):
            tar.addfile(_info(folder + "/", 0o755, tarfile.DIRTYPE))
        for name in names:
            if name in links:
                info = _info(name, 0o777, tarfile.SYMTYPE)
                info.linkname = links[name]
                tar.addfile(info)
            elif name in extra:
                tar.addfile(_info(name, 0o644, size=len(extra[name])), io.BytesIO(extra[name]))
            else:
                source = files[name]
                mode = 0o755 if os.access(source, os.X_OK) else 0o644
                with source.open("rb") as handle:
                    tar.addfile(_info(name, mode, size=source.stat().st_size), handle)


def _files(key: str) -> tuple[Path, Path]:
    """Where the layer for `key` and its digest are kept."""
    folder = cache_dir("layers")
    return folder / f"{key}.tar", folder / f"{key}.sha256"


def record(marker: Path, digest: str, path: Path) -> None:
    """Keep `digest` with the size and mtime the tar had when it was last found whole."""
    status = path.stat()
    marker.write_text(f"{digest} {status.st_size} {status.st_mtime_ns}\n")


def intact(path: Path, marker: Path) -> bool:
    """Whether the file (a layer tar, a compressed blob) still is what its marker records:
    trusted while its size and mtime are what they were when it was last hashed, hashed again
    otherwise."""
    try:
        digest, *seen = marker.read_text().split()
        status = path.stat()
    except (OSError, ValueError):
        return False
    if seen == [str(status.st_size), str(status.st_mtime_ns)]:
        return True
    actual = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(COPY_BUFFER):
            actual.update(chunk)
    if actual.hexdigest() != digest:
        return False
    record(marker, digest, path)
    return True


def is_cached(key: str, log: Log) -> bool:
    """Whether the layer for `key` is made and whole; a damaged one (truncated, changed) is
    dropped with a warning, so that it is made again."""
    path, marker = _files(key)
    if intact(path, marker):
        return True
    if path.exists() or marker.exists():
        log(f"warning: the layer cache's {path} does not match its recorded digest; made again")
        path.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
    return False


def cached(key: str, created_by: str, log: Log) -> Layer | None:
    """The layer made for `key` before, if any (and whole)."""
    if not is_cached(key, log):
        return None
    path, marker = _files(key)
    digest = marker.read_text().split()[0]
    return Layer(path, f"sha256:{digest}", path.stat().st_size, created_by)


class _Hashing(io.RawIOBase):
    """A file being written, hashed on the way: a new layer is never read back to hash it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        self.written += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.written


def store(key: str, created_by: str, make: Callable[[IO[bytes]], None], log: Log) -> Layer:
    """The cached layer for `key`, made by `make(file)` when it is not cached yet."""
    found = cached(key, created_by, log)
    if found is not None:
        return found
    path, marker = _files(key)
    partial = path.with_name(f".{key}.{os.getpid()}.tmp")
    try:
        with partial.open("wb") as handle:
            sink = _Hashing(handle)
            make(cast(IO[bytes], sink))  # a writable file, as tarfile needs
        partial.replace(path)
        record(marker, sink.digest.hexdigest(), path)
    finally:
        partial.unlink(missing_ok=True)
    return Layer(path, f"sha256:{sink.digest.hexdigest()}", sink.written, created_by, made=True)


def drop(key: str) -> None:
    """Forget the layer made for `key` (one that turned out not to be what it should)."""
    for path in _files(key):
        path.unlink(missing_ok=True)


def in_site(relative: str) -> bool:
    """Whether a file of uv's --target folder goes to site-packages (not bin/ or share/)."""
    return relative.split("/", 1)[0] not in ("bin", "share")


def image_path(relative: str, site_packages: PurePosixPath) -> str:
    if not in_site(relative):
        return str((PREFIX / relative).relative_to("/"))
    return str((site_packages / relative).relative_to("/"))


def _staged(
    target: Path, site_packages: PurePosixPath, cache_tag: str | None
) -> tuple[dict[str, dict[str, Path]], dict[str, Path]]:
    """The files of each distribution in `target` (uv's --target folder) by RECORD, with
    their bytecode, by canonical name (path in the image → file); and the files no RECORD
    claims."""
    claimed: set[Path] = {target / name for name in UV_FILES}
    found: dict[str, dict[str, Path]] = {}
    for record in sorted(target.glob("*.dist-info/RECORD")):
        files: dict[str, Path] = {}
        with record.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if not row or not (target / row[0]).is_file():
                    continue
                relative = os.path.normpath(row[0])
                files[image_path(relative, site_packages)] = target / relative
                if cache_tag and in_site(relative) and wanted(relative):
                    pyc = pyc_path(relative, cache_tag)
                    if (target / pyc).is_file():
                        files[image_path(pyc, site_packages)] = target / pyc
        claimed.update(files.values())
        name = record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        found[canonicalize_name(name)] = files
    rest = {
        image_path(str(path.relative_to(target)), site_packages): path
        for path in sorted(target.rglob("*"))
        if path.is_file() and path not in claimed
    }
    return found, rest


def _content_key(files: dict[str, Path]) -> str:
    return json_sha256(
        {
            "format": LAYER_FORMAT,
            "files": {
                image: hashlib.sha256(path.read_bytes()).hexdigest()
                for image, path in sorted(files.items())
            },
            "executable": sorted(i for i, p in files.items() if os.access(p, os.X_OK)),
        }
    )


def _merge(out: IO[bytes], parts: Sequence[Layer]) -> None:
    """One tar holding what the `parts` hold, in name order."""
    with ExitStack() as stack:
        members: dict[str, tuple[tarfile.TarFile, tarfile.TarInfo]] = {}
        for part in parts:
            tar = stack.enter_context(tarfile.open(part.path))
            for member in tar.getmembers():
                members.setdefault(member.name, (tar, member))
        with tarfile.TarFile(
            fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=COPY_BUFFER
        ) as merged:
            for name in sorted(members):
                tar, member = members[name]
                merged.addfile(member, tar.extractfile(member) if member.isfile() else None)


def package_layers(
    packages: Sequence[Package],
    target: Path | None,
    site_packages: PurePosixPath,
    direct: Collection[str] = (),
    cache_tag: str | None = None,
    *,
    log: Log,
) -> list[Layer]:
    """One layer per distribution: made before (by its key), or from what `target` (uv's
    --target folder, holding the distributions whose layer was not made yet) holds.

    The packages a spec names itself (`direct`, canonical names) go last: they change more
    often than what they pull in, and a changed layer makes every layer above it load again.
    """
    staged, rest = _staged(target, site_packages, cache_tag) if target else ({}, {})
    made: list[tuple[bool, Layer]] = []
    for package in packages:
        name = canonicalize_name(package.name)
        created_by = f"envrepo: install {package.name}-{package.version}"
        layer = cached(package.key, created_by, log)
        if layer is None and name in staged:
            removed = [path for path in package.replaces if path not in staged[name]]
            writer = partial(write_layer, files=staged[name], removed=removed)
            layer = store(package.key, created_by, writer, log)
        if layer is not None:
            made.append((name in direct, layer))
    # Within each part, largest first: a changed pin reloads its layer and those above it.
    layers = [layer for _, layer in sorted(made, key=lambda m: (m[0], -m[1].size))]
    if len(layers) > MAX_PACKAGE_LAYERS:
        tail = layers[MAX_PACKAGE_LAYERS - 1 :]
        key = json_sha256({"format": LAYER_FORMAT, "merged": [layer.diff_id for layer in tail]})
        label = "envrepo: install " + ", ".join(t.created_by.rsplit(" ", 1)[1] for t in tail)
        layers = [
            *layers[: MAX_PACKAGE_LAYERS - 1],
            store(key, label, partial(_merge, parts=tail), log),
        ]
    if rest:
        layers.append(
            store(_content_key(rest), "envrepo: other files", partial(write_layer, files=rest), log)
        )
    return layers


def venv_layer(python: str, version: str, site_packages: PurePosixPath, log: Log) -> Layer:
    """The skeleton `python -m venv --without-pip` makes, built without running anything."""
    home = str(PurePosixPath(python).parent)
    major_minor = ".".join(version.split(".")[:2])
    prefix = str(PREFIX.relative_to("/"))
    config = (
        f"home = {home}\ninclude-system-site-packages = false\nversion = {version}\n"
        f"executable = {python}\ncommand = {python} -m venv --without-pip {ENV_PREFIX}\n"
    ).encode()
    links = {
        f"{prefix}/bin/python": python,
        f"{prefix}/bin/python3": "python",
        f"{prefix}/bin/python{major_minor}": "python",
        f"{prefix}/lib64": "lib",
    }
    extra = {f"{prefix}/pyvenv.cfg": config}
    folders = [str(site_packages.relative_to("/")), f"{prefix}/bin", f"{prefix}/include"]
    key = json_sha256({"format": LAYER_FORMAT, "venv": [python, version, str(site_packages)]})
    return store(
        key,
        f"envrepo: python -m venv {ENV_PREFIX}",
        lambda out: write_layer(out, {}, links, extra, folders),
        log,
    )


def conda_layers(prefix: Path, log: Log) -> list[Layer]:
    """One layer per conda package linked into `prefix` (the image's /opt/env), by the file
    list rattler records in conda-meta/, the record itself included."""
    root = str(PREFIX.relative_to("/"))
    layers = []
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        listed = json.loads(meta.read_text(encoding="utf-8")).get("files", [])
        files = {f"{root}/{rel}": prefix / rel for rel in listed if (prefix / rel).is_file()}
        files[f"{root}/conda-meta/{meta.name}"] = meta
        layers.append(
            store(
                _content_key(files),
                f"envrepo: conda {meta.stem}",
                partial(write_layer, files=files),
                log,
            )
        )
    return layers
