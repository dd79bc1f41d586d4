"""The registry's form of each layer: gzip by ISA-L at level 1, made once per layer and kept in
envrepo's cache by the layer's diff ID, so that no push compresses a layer twice. Layers that
Docker made (a bootstrap root, apt's layer, a Dockerfile base) are read from the daemon once
(`docker save`) into the same cache, with the exact config of the image.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from isal import isal_zlib

from envrepo.engine.docker import Docker, Log
from envrepo.errors import EnvrepoError
from envrepo.image.layers import COPY_BUFFER, intact, record
from envrepo.repo.files import cache_dir

GZIP_LEVEL = 1  # measured: level 1 of ISA-L compresses the tutorial's layers at ~300 MB/s
GZIP_WBITS = 31  # a gzip header and trailer, as registries expect of a .tar.gzip layer
COMPRESSORS = max(2, min(4, os.cpu_count() or 1))  # layers compressed at once


@dataclass(frozen=True)
class Blob:
    """A compressed layer on disk: its digest and size as the registry names it, and the diff
    ID (the digest of the tar it holds) as the image config names it."""

    path: Path
    digest: str
    size: int
    diff_id: str


def _files(diff_id: str) -> tuple[Path, Path]:
    hex_id = diff_id.removeprefix("sha256:")
    folder = cache_dir("blobs")
    return folder / f"{hex_id}.tar.gz", folder / f"{hex_id}.sha256"


def cached(diff_id: str, log: Log) -> Blob | None:
    """The compressed form of layer `diff_id`, when it was made before and is whole; a damaged
    one is dropped with a warning, so that it is made again."""
    path, marker = _files(diff_id)
    if intact(path, marker):
        digest = marker.read_text().split()[0]
        return Blob(path, f"sha256:{digest}", path.stat().st_size, diff_id)
    if path.exists() or marker.exists():
        log(f"warning: the blob cache's {path} does not match its recorded digest; made again")
        path.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
    return None


def compress(source: IO[bytes], wanted: Collection[str]) -> Blob | None:
    """`source` (a layer tar) compressed into the cache, when the tar it holds is one of the
    layers `wanted` (diff IDs); None otherwise (a `docker save` member that is another layer).
    A layer's diff ID is known only once it is read, so it is compressed on the way."""
    partial = cache_dir("blobs") / f".{os.getpid()}.{threading.get_ident()}.tmp"
    read, written = hashlib.sha256(), hashlib.sha256()
    size = 0
    try:
        with partial.open("wb") as out:
            packer = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, GZIP_WBITS)
            while chunk := source.read(COPY_BUFFER):
                read.update(chunk)
                piece = packer.compress(chunk)
                written.update(piece)
                size += out.write(piece)
            tail = packer.flush()
            written.update(tail)
            size += out.write(tail)
        diff_id = f"sha256:{read.hexdigest()}"
        if diff_id not in wanted:
            return None
        path, marker = _files(diff_id)
        partial.replace(path)
        record(marker, written.hexdigest(), path)
    finally:
        partial.unlink(missing_ok=True)
    return Blob(path, f"sha256:{written.hexdigest()}", size, diff_id)


def keep_blob(blob: Blob, log: Log) -> Blob:
    """A compressed layer made elsewhere (downloaded from the registry, its digest checked on
    the way) moved into the cache."""
    path, marker = _files(blob.diff_id)
    blob.path.replace(path)
    record(marker, blob.digest.removeprefix("sha256:"), path)
    return Blob(path, blob.digest, blob.size, blob.diff_id)


def of_layer(diff_id: str, tar: Path, log: Log) -> Blob:
    """The compressed form of the layer tar `tar`, made once."""
    found = cached(diff_id, log)
    if found is not None:
        return found
    with tar.open("rb") as source:
        made = compress(source, {diff_id})
    if made is None:
        raise EnvrepoError(
            f"{tar}: is not the layer {diff_id[:19]} its cache entry says; remove it and build again"
        )
    return made


def config_path(image_id: str) -> Path:
    return cache_dir("blobs") / f"{image_id.removeprefix('sha256:')}.config.json"


def keep_config(body: bytes) -> None:
    """Keep an image's config as it was loaded (its ID is the config's digest): the registry
    gets exactly those bytes, so a pull gives the same image ID."""
    path = config_path("sha256:" + hashlib.sha256(body).hexdigest())
    if not path.exists():
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(body)
        partial.replace(path)


def from_daemon(engine: Docker, image_id: str, wanted: Collection[str], log: Log) -> None:
    """Read image `image_id` from the daemon once (`docker save`) and keep its config and the
    compressed form of its layers among `wanted` (diff IDs) in the cache."""
    log(f"reading {image_id[:19]} from the daemon for its layers")
    missing = set(wanted)
    with engine.save(image_id) as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            if handle is None:
                continue
            name = member.name.rsplit("/", 1)[-1]
            if image_id.removeprefix("sha256:") in name and member.size < 1 << 24:
                keep_config(handle.read())
                continue
            # Docker 20.10 names a layer <id>/layer.tar, Docker 25+ blobs/sha256/<diff id>.
            if name == "layer.tar" or f"sha256:{name}" in missing:
                made = compress(handle, missing)
                if made is not None:
                    missing.discard(made.diff_id)


def image_blobs(
    engine: Docker,
    image_id: str,
    diff_ids: list[str],
    tars: Mapping[str, Path],
    log: Log,
    known: Collection[str] = (),
) -> tuple[bytes, dict[str, Blob]]:
    """The config and the compressed layers of image `image_id` but those `known` to be in
    the registry: from the cache, made from the layer tars envrepo holds (`tars`, by diff
    ID), and for the rest read from the daemon."""
    blobs: dict[str, Blob] = {}
    diff_ids = [d for d in diff_ids if d not in known]
    for diff_id in diff_ids:
        found = cached(diff_id, log)
        if found is not None:
            blobs[diff_id] = found
    # ISA-L and hashlib let go of the GIL on large buffers: threads compress side by side.
    todo = [d for d in diff_ids if d not in blobs and d in tars]
    with ThreadPoolExecutor(COMPRESSORS) as pool:
        blobs |= dict(zip(todo, pool.map(lambda d: of_layer(d, tars[d], log), todo), strict=True))
    missing = [d for d in diff_ids if d not in blobs]
    if missing or not config_path(image_id).exists():
        from_daemon(engine, image_id, missing, log)
        for diff_id in missing:
            found = cached(diff_id, log)
            if found is None:
                raise EnvrepoError(
                    f"image {image_id[:19]}: docker save gave no layer {diff_id[:19]}; build again"
                )
            blobs[diff_id] = found
    config = config_path(image_id).read_bytes()
    return config, blobs
