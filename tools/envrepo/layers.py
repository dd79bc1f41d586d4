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
import tarfile
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from packaging.utils import canonicalize_name

from envrepo.bytecode import pyc_path, wanted
from envrepo.digest import json_sha256
from envrepo.errors import EnvrepoError
from envrepo.files import cache_dir

ENV_PREFIX = PurePosixPath("/opt/env")
LAYER_FORMAT = 4  # 4: a cached layer records its weight, so the order is known before making
UV_FILES = {".lock"}  # uv's own lock on the --target folder, not part of the environment
MAX_PACKAGE_LAYERS = 100  # Docker allows 127 layers in all; the rest share one layer
COPY_BUFFER = 1 << 20  # tarfile copies 16 KiB at a time by default; layers are hundreds of MB
# Layers to make are handed on in up to MAX_WAVES waves of about WAVE_BYTES installed bytes
# each, so that the daemon loads the first while the next are compiled.
WAVE_BYTES = 96 << 20
MAX_WAVES = 3


@dataclass(frozen=True)
class Package:
    """A locked distribution that gets a layer of its own, and that layer's cache key, known
    before anything is installed."""

    name: str
    version: str
    key: str


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
) -> None:
    """A tar of `files` (path in the image → file on the host), symlinks, small files and
    empty folders."""
    links = links or {}
    extra = extra or {}
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
    """Where the layer for `key` and what is known of it (diff ID, weight) are kept."""
    folder = cache_dir("layers")
    return folder / f"{key}.tar", folder / f"{key}.json"


def is_cached(key: str) -> bool:
    return all(path.is_file() for path in _files(key))


def _known(key: str) -> dict[str, Any] | None:
    if not is_cached(key):
        return None
    return cast(dict[str, Any], json.loads(_files(key)[1].read_text(encoding="utf-8")))


def cached(key: str, created_by: str) -> Layer | None:
    """The layer made for `key` before, if any."""
    known = _known(key)
    if known is None:
        return None
    path = _files(key)[0]
    return Layer(path, known["diff_id"], path.stat().st_size, created_by)


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


def _finish(key: str, created_by: str, make: Callable[[IO[bytes]], None], weight: int = 0) -> Layer:
    """The cached layer for `key`, made by `make(file)` when it is not cached yet."""
    found = cached(key, created_by)
    if found is not None:
        return found
    path, marker = _files(key)
    partial = path.with_name(f".{key}.{os.getpid()}.tmp")
    try:
        with partial.open("wb") as handle:
            sink = _Hashing(handle)
            make(cast(IO[bytes], sink))  # a writable file, as tarfile needs
        partial.replace(path)
        diff_id = f"sha256:{sink.digest.hexdigest()}"
        marker.write_text(json.dumps({"diff_id": diff_id, "weight": weight}), encoding="utf-8")
    finally:
        partial.unlink(missing_ok=True)
    return Layer(path, diff_id, sink.written, created_by, made=True)


def in_site(relative: str) -> bool:
    """Whether a file of uv's --target folder goes to site-packages (not bin/ or share/)."""
    return relative.split("/", 1)[0] not in ("bin", "share")


def image_path(relative: str, site_packages: PurePosixPath) -> str:
    if not in_site(relative):
        return str((ENV_PREFIX / relative).relative_to("/"))
    return str((site_packages / relative).relative_to("/"))


@dataclass(frozen=True)
class Planned:
    """A distribution's layer at its place in the image: found in the cache (no `files`), or
    to be made from `files` (path under uv's --target folder → staged file), bytecode
    included once it is compiled."""

    package: Package
    weight: int  # the bytes it installs, bytecode aside: heavier layers go lower
    files: Mapping[str, Path]

    @property
    def created_by(self) -> str:
        return f"envrepo: install {self.package.name}-{self.package.version}"


def _staged(target: Path) -> tuple[dict[str, dict[str, Path]], dict[str, Path]]:
    """The files of each distribution in `target` (uv's --target folder) by RECORD, by
    canonical name (path under `target` → file); and the files no RECORD claims."""
    claimed: set[Path] = {target / name for name in UV_FILES}
    found: dict[str, dict[str, Path]] = {}
    for record in sorted(target.glob("*.dist-info/RECORD")):
        files: dict[str, Path] = {}
        with record.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if row and (target / row[0]).is_file():
                    relative = os.path.normpath(row[0])
                    files[relative] = target / relative
        claimed.update(files.values())
        name = record.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        found[canonicalize_name(name)] = files
    rest = {
        path.relative_to(target).as_posix(): path
        for path in sorted(target.rglob("*"))
        if path.is_file() and path not in claimed
    }
    return found, rest


def plan(
    packages: Sequence[Package], target: Path | None, direct: Collection[str] = ()
) -> tuple[list[Planned], dict[str, Path]]:
    """The distributions' layers in the order they stack, and the staged files no
    distribution claims.

    The packages a spec names itself (`direct`, canonical names) go last: they change more
    often than what they pull in, and a changed layer makes every layer above it load again.
    Within each part, heaviest first.
    """
    staged, rest = _staged(target) if target else ({}, {})
    found: list[tuple[bool, Planned]] = []
    for package in packages:
        name = canonicalize_name(package.name)
        known = _known(package.key)
        if known is not None:
            found.append((name in direct, Planned(package, int(known["weight"]), {})))
        elif name in staged:
            files = staged[name]
            weight = sum(path.stat().st_size for path in files.values())
            found.append((name in direct, Planned(package, weight, files)))
    return [planned for _, planned in sorted(found, key=lambda f: (f[0], -f[1].weight))], rest


def sources(files: Mapping[str, Path], site_packages: PurePosixPath) -> list[tuple[Path, str]]:
    """The staged files that get bytecode, each with its path in the image."""
    return [
        (path, "/" + image_path(relative, site_packages))
        for relative, path in sorted(files.items())
        if in_site(relative) and wanted(relative)
    ]


def _image_files(
    files: Mapping[str, Path], site_packages: PurePosixPath, cache_tag: str | None
) -> dict[str, Path]:
    """`files` by their path in the image, each source's bytecode beside it once compiled."""
    found = {}
    for relative, path in files.items():
        found[image_path(relative, site_packages)] = path
        if cache_tag and in_site(relative) and wanted(relative):
            pyc = pyc_path(relative, cache_tag)
            staged = path.parent / "__pycache__" / PurePosixPath(pyc).name
            if staged.is_file():
                found[image_path(pyc, site_packages)] = staged
    return found


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


def _waves(planned: Sequence[Planned], parts: int) -> list[list[Planned]]:
    """`planned` cut into up to `parts` runs holding about as many bytes to make each."""
    total = sum(p.weight for p in planned if p.files)
    runs: list[list[Planned]] = [[]]
    done = 0
    for item in planned:
        runs[-1].append(item)
        if item.files:
            done += item.weight
            if len(runs) < parts and done >= total * len(runs) / parts:
                runs.append([])
    return [run for run in runs if run]


def _make(planned: Planned, site_packages: PurePosixPath, cache_tag: str | None) -> Layer:
    key, created_by = planned.package.key, planned.created_by
    if planned.files:
        files = _image_files(planned.files, site_packages, cache_tag)
        return _finish(key, created_by, partial(write_layer, files=files), planned.weight)
    found = cached(key, created_by)
    if found is None:
        raise EnvrepoError(f"the layer cache lost {created_by[17:]} during the build; build again")
    return found


def package_layers(
    packages: Sequence[Package],
    target: Path | None,
    site_packages: PurePosixPath,
    direct: Collection[str] = (),
    cache_tag: str | None = None,
    compile_sources: Callable[[list[tuple[Path, str]]], None] = lambda files: None,
    ready: Callable[[list[Layer]], None] | None = None,
) -> list[Layer]:
    """One layer per distribution: made before (found by its key), or made now from what
    `target` (uv's --target folder, holding the distributions whose layer was not made yet)
    holds, in the order `plan` gives.

    Layers are made in waves: `compile_sources` gets each wave's sources before its layers
    are written, and `ready` the layers so far (the image's lowest) after every wave but the
    last, so that the daemon loads them while the next wave is compiled.
    """
    ordered, rest = plan(packages, target, direct)
    to_make = sum(item.weight for item in ordered if item.files)
    waves = _waves(ordered, min(MAX_WAVES, 1 + to_make // WAVE_BYTES) if ready else 1)
    layers: list[Layer] = []
    for number, wave in enumerate(waves, start=1):
        compile_sources([found for item in wave for found in sources(item.files, site_packages)])
        layers += [_make(item, site_packages, cache_tag) for item in wave]
        if ready is not None and number < len(waves):
            ready(layers[: MAX_PACKAGE_LAYERS - 1])
    if len(layers) > MAX_PACKAGE_LAYERS:
        tail = layers[MAX_PACKAGE_LAYERS - 1 :]
        key = json_sha256({"format": LAYER_FORMAT, "merged": [layer.diff_id for layer in tail]})
        label = "envrepo: install " + ", ".join(t.created_by.rsplit(" ", 1)[1] for t in tail)
        layers = [
            *layers[: MAX_PACKAGE_LAYERS - 1],
            _finish(key, label, partial(_merge, parts=tail)),
        ]
    if rest:
        compile_sources(sources(rest, site_packages))
        files = _image_files(rest, site_packages, cache_tag)
        layers.append(
            _finish(_content_key(files), "envrepo: other files", partial(write_layer, files=files))
        )
    return layers


def venv_layer(python: str, version: str, site_packages: PurePosixPath) -> Layer:
    """The skeleton `python -m venv --without-pip` makes, built without running anything."""
    home = str(PurePosixPath(python).parent)
    major_minor = ".".join(version.split(".")[:2])
    prefix = str(ENV_PREFIX.relative_to("/"))
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
    return _finish(
        key,
        f"envrepo: python -m venv {ENV_PREFIX}",
        lambda out: write_layer(out, {}, links, extra, folders),
    )


def conda_layers(prefix: Path) -> list[Layer]:
    """One layer per conda package linked into `prefix` (the image's /opt/env), by the file
    list rattler records in conda-meta/, the record itself included."""
    root = str(ENV_PREFIX.relative_to("/"))
    layers = []
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        listed = json.loads(meta.read_text(encoding="utf-8")).get("files", [])
        files = {f"{root}/{rel}": prefix / rel for rel in listed if (prefix / rel).is_file()}
        files[f"{root}/conda-meta/{meta.name}"] = meta
        layers.append(
            _finish(
                _content_key(files),
                f"envrepo: conda {meta.stem}",
                partial(write_layer, files=files),
            )
        )
    return layers
