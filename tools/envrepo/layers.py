"""Image layers made on the host: one deterministic tar per installed distribution, and the
virtual environment's skeleton, cached by content so that a layer is made once.

A layer holds only its files (uid 0, mtime 0, sorted), so the same package gives the same
layer on every machine and in every environment, and a changed pin makes one new layer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from envrepo.digest import json_sha256
from envrepo.files import cache_dir

ENV_PREFIX = PurePosixPath("/opt/env")
LAYER_FORMAT = 2
UV_FILES = {".lock"}  # uv's own lock on the --target folder, not part of the environment
MAX_PACKAGE_LAYERS = 100  # Docker allows 127 layers in all; the rest share one layer


@dataclass(frozen=True)
class Layer:
    """A layer tar on disk: its diff ID (sha256 of the tar), size, and what made it."""

    path: Path
    diff_id: str
    size: int
    created_by: str


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
    target: Path,
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
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
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


def _finish(key: str, created_by: str, make: Callable[[Path], None]) -> Layer:
    """The cached layer for `key`, made by `make(path)` when it is not cached yet."""
    folder = cache_dir("layers")
    path = folder / f"{key}.tar"
    marker = folder / f"{key}.sha256"
    if not (path.is_file() and marker.is_file()):
        partial = folder / f".{key}.{os.getpid()}.tmp"
        try:
            make(partial)
            digest = hashlib.sha256()
            with partial.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            partial.replace(path)
            marker.write_text(digest.hexdigest())
        finally:
            partial.unlink(missing_ok=True)
    return Layer(path, f"sha256:{marker.read_text().strip()}", path.stat().st_size, created_by)


def _image_path(relative: str, site_packages: PurePosixPath) -> str:
    top = relative.split("/", 1)[0]
    if top in ("bin", "share"):
        return str((ENV_PREFIX / relative).relative_to("/"))
    return str((site_packages / relative).relative_to("/"))


def package_layers(
    target: Path, site_packages: PurePosixPath, direct: Collection[str] = ()
) -> list[Layer]:
    """One layer per distribution installed in `target` (uv's --target folder), by RECORD.

    The packages a spec names itself (`direct`, canonical names) go last: they change more
    often than what they pull in, and a changed layer makes every layer above it load again.
    """
    claimed: set[str] = set()
    recorded: dict[str, str] = {}
    groups: list[tuple[str, dict[str, Path]]] = []
    for record in sorted(target.glob("*.dist-info/RECORD")):
        files: dict[str, Path] = {}
        with record.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if not row or not (target / row[0]).is_file():
                    continue
                relative = os.path.normpath(row[0])
                claimed.add(relative)
                image_path = _image_path(relative, site_packages)
                files[image_path] = target / relative
                # The installer's own record of the file's hash saves reading every byte again;
                # console scripts are rewritten after install, so they are hashed as they are.
                if len(row) > 1 and row[1] and not relative.startswith("bin/"):
                    recorded[image_path] = row[1]
        groups.append((record.parent.name.removesuffix(".dist-info"), files))
    rest = {
        _image_path(str(path.relative_to(target)), site_packages): path
        for path in sorted(target.rglob("*"))
        if path.is_file() and str(path.relative_to(target)) not in claimed | UV_FILES
    }
    # Within each part, largest first: a changed pin reloads its layer and those above it.
    groups.sort(
        key=lambda g: (
            canonicalize_name(g[0].rsplit("-", 1)[0]) in direct,
            -sum(p.stat().st_size for p in g[1].values()),
        )
    )
    if len(groups) > MAX_PACKAGE_LAYERS:
        tail = groups[MAX_PACKAGE_LAYERS - 1 :]
        merged = {k: v for _, files in tail for k, v in files.items()}
        groups = [*groups[: MAX_PACKAGE_LAYERS - 1], ("+".join(n for n, _ in tail), merged)]
    if rest:
        groups.append(("other files", rest))
    layers = []
    for name, files in groups:
        key = json_sha256(
            {
                "format": LAYER_FORMAT,
                "files": {
                    image: recorded.get(image) or hashlib.sha256(path.read_bytes()).hexdigest()
                    for image, path in sorted(files.items())
                },
                "executable": sorted(i for i, p in files.items() if os.access(p, os.X_OK)),
            }
        )
        layers.append(_finish(key, f"envrepo: install {name}", partial(write_layer, files=files)))
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
        key = json_sha256(
            {
                "format": LAYER_FORMAT,
                "conda": {
                    image: hashlib.sha256(path.read_bytes()).hexdigest()
                    for image, path in sorted(files.items())
                },
                "executable": sorted(i for i, p in files.items() if os.access(p, os.X_OK)),
            }
        )
        layers.append(
            _finish(key, f"envrepo: conda {meta.stem}", partial(write_layer, files=files))
        )
    return layers
