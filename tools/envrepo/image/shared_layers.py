"""Layers shared through the registry: each layer envrepo makes is also tagged `l-<its key>`
in one repository of the registry (`envrepo/layers`, a name no environment can have), with
its diff ID beside it. Before making a layer, a build looks its key up there with one request
(no listing: GHCR has no catalogue) and takes the blob instead, so that an environment that
shares packages with one already pushed neither installs, compiles nor uploads them again,
on any machine, a fresh CI runner included."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

from isal import isal_zlib

from envrepo.engine import oci
from envrepo.engine.docker import Log
from envrepo.engine.registry import Registry, Upload
from envrepo.errors import EnvrepoError
from envrepo.image import layers as layer_cache
from envrepo.image.blobs import GZIP_WBITS, Blob, keep_blob
from envrepo.index import tags
from envrepo.repo.files import cache_dir

REPOSITORY = "envrepo/layers"
DIFF_ID = "dev.envrepo.diff-id"
CREATED_BY = "dev.envrepo.created-by"
LOOKUPS = 8  # lookups and downloads at once
# What a damaged gzip raises (isal's stubs declare it as an instance, not a class).
CORRUPT = cast(type[Exception], isal_zlib.error)


def empty_config(registry: Registry, name: str) -> Upload:
    """OCI's empty config, put in repository `name` for an artifact's manifest: uploaded once
    per registry, into the layer repository, and mounted from there."""
    path = cache_dir("blobs") / "empty-config.json"
    if not path.exists():
        path.write_bytes(oci.EMPTY_BODY)
    config = Upload(oci.EMPTY_DIGEST, len(oci.EMPTY_BODY), path, oci.EMPTY)
    # A registry that keeps envrepo out of the layer repository gets a copy per repository.
    with contextlib.suppress(EnvrepoError):
        registry.put_blobs(REPOSITORY, [config])
    if name != REPOSITORY:
        registry.put_blobs(name, [config], [registry.path(REPOSITORY)])
    return config


def fetch(registry: Registry, keys: Sequence[str], log: Log) -> set[str]:
    """The keys whose layer the registry has: each brought into the layer cache (and its
    blob into the blob cache), checked against the digests the tag records."""
    with ThreadPoolExecutor(LOOKUPS) as pool:
        found = [
            k
            for k, ok in zip(keys, pool.map(lambda k: _fetch(registry, k, log), keys), strict=True)
            if ok
        ]
    if found:
        log(f"{len(found)} of {len(keys)} layers to make are in the registry already: downloaded")
    return set(found)


def _fetch(registry: Registry, key: str, log: Log) -> bool:
    try:
        manifest = registry.manifest(REPOSITORY, tags.layer_tag(key))
    except EnvrepoError as error:
        # Sharing saves time; a registry that refuses it costs only that.
        log(f"warning: {error.lines[0]}; the layer is made here")
        return False
    if manifest is None:
        return False
    try:
        [layer] = manifest["layers"]
        digest, size = str(layer["digest"]), int(layer["size"])
        notes = manifest.get("annotations") or {}
        diff_id, created_by = str(notes[DIFF_ID]), str(notes.get(CREATED_BY, ""))
    except (KeyError, TypeError, ValueError):
        log(
            f"warning: {REPOSITORY}:{tags.layer_tag(key)} is not a layer tag envrepo wrote; made here"
        )
        return False
    blob_path = cache_dir("blobs") / f".{key}.download"
    unpacker = isal_zlib.decompressobj(GZIP_WBITS)

    def unpack(out: object) -> None:
        with blob_path.open("wb") as packed:
            for chunk in registry.blob(REPOSITORY, digest):
                packed.write(chunk)
                out.write(unpacker.decompress(chunk))  # type: ignore[attr-defined]
            out.write(unpacker.flush())  # type: ignore[attr-defined]

    try:
        made = layer_cache.store(key, created_by, unpack, log)
        if made.diff_id != diff_id:
            layer_cache.drop(key)
            log(
                f"warning: {REPOSITORY}:{tags.layer_tag(key)} holds another layer than it says; made here"
            )
            return False
        keep_blob(Blob(blob_path, digest, size, diff_id), log)
    except (EnvrepoError, OSError, CORRUPT) as error:
        layer_cache.drop(key)
        log(f"warning: {REPOSITORY}:{tags.layer_tag(key)} could not be used ({error}); made here")
        return False
    finally:
        blob_path.unlink(missing_ok=True)
    return True


def publish(
    registry: Registry, source: str, tars: Mapping[str, Path], blobs: Collection[Blob], log: Log
) -> None:
    """Tag each layer envrepo made for this image (`tars`: its layer tars by diff ID, named by
    their keys) in the layer repository, mounting its blob from `source` (the image's
    repository, which has them all now). A key tagged already is left as it is; a registry
    that refuses the tags only loses the sharing, with a warning."""
    try:
        _publish(registry, source, tars, blobs, log)
    except EnvrepoError as error:
        log(f"warning: {error.lines[0]}; its layers are not shared with other environments")


def _publish(
    registry: Registry, source: str, tars: Mapping[str, Path], blobs: Collection[Blob], log: Log
) -> None:
    by_diff = {blob.diff_id: blob for blob in blobs}
    wanted = {
        Path(path).stem: by_diff[diff_id]
        for diff_id, path in tars.items()
        if diff_id in by_diff
        and registry.manifest_digest(REPOSITORY, tags.layer_tag(Path(path).stem)) is None
    }
    if not wanted:
        return
    config = empty_config(registry, REPOSITORY)
    uploads = [Upload(b.digest, b.size, b.path, oci.OCI_LAYER) for b in wanted.values()]
    registry.put_blobs(REPOSITORY, uploads, [registry.path(source)])
    for key, blob in wanted.items():
        layer = Upload(blob.digest, blob.size, blob.path, oci.OCI_LAYER)
        notes = {DIFF_ID: blob.diff_id, CREATED_BY: f"envrepo layer {key[:12]}"}
        registry.put_manifest(
            REPOSITORY,
            config,
            [layer],
            oci.OCI_MANIFEST,
            [tags.layer_tag(key)],
            notes,
            oci.SHARED_LAYER,
        )
    log(f"tagged {len(wanted)} new layers in {REPOSITORY} for other environments to share")
