"""The image an environment is built on, one case per kind of base: its parent environment's
image, a `base.image` at the digest its lock recorded, a root made from the Debian archive,
or the image the environment's own Dockerfile builds."""

from __future__ import annotations

from collections.abc import Mapping

from envrepo.engine.docker import Docker, ImageInfo, Log
from envrepo.image import bootstrap, naming
from envrepo.lock.locked import Locked


def reference(engine: Docker, locked: Locked, parents: Mapping[str, str], log: Log) -> str:
    """The base's reference, made now when the base is made here (a bootstrap root, a
    Dockerfile); `parents` holds each environment built so far by its reference."""
    spec = locked.spec
    if spec.parent is not None:
        return parents[spec.parent]
    if locked.base_image is not None:
        return locked.base_image
    if spec.base.bootstrap is not None:
        return bootstrap.build_root_image(engine, spec.base.bootstrap, log)
    tag = naming.dockerfile_base(spec.name, locked.spec_hash)
    engine.build(spec.folder, spec.base.value, tag, log)
    return tag


def ensure(engine: Docker, ref: str, auth: Mapping[str, str] | None, log: Log) -> ImageInfo:
    """The base image in the daemon, pulled from its registry when it is not there."""
    found = engine.image(ref)
    if found is not None:
        return found
    log(f"pulling {ref}")
    return engine.pull(ref, auth)
