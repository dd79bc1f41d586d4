"""The base-image locker: a `base.image` given by tag is resolved to the digest the registry
serves for it now, so builds use that digest, and a patched base image (a new digest under
the same tag) changes the lock, the spec hash, and so rebuilds exactly what is built on it."""

from __future__ import annotations

from collections.abc import Sequence

from envrepo.engine.registry import connect
from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs.sources import LockInput
from envrepo.repo.spec import Spec

DOCKER_HUB = "registry-1.docker.io"


def parse_reference(reference: str) -> tuple[str, str, str]:
    """(registry host, repository, tag) of an image reference without a digest."""
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, reference if rest else f"library/{reference}"
    name, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
    return host, name, tag


def tool_version() -> str:
    return "registry API v2"


def resolve(spec: Spec, item: LockInput, ancestors: Sequence[Spec], request: object = None) -> str:
    reference = spec.base.value
    host, repository, tag = parse_reference(reference)
    try:
        digest = connect(host).manifest_digest(repository, tag)
    except EnvrepoError as error:
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "base.image",
                (f"{reference} cannot be resolved to a digest: {error.lines[0]}"),
            )
        ) from None
    if digest is None:
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "base.image",
                (f"{reference} is not in registry {host}; check the name and tag"),
            )
        )
    return f"{reference}@{digest}\n"
