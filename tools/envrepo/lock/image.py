"""The base-image locker: a `base.image` given by tag is resolved to the digest the registry
serves for it now, so builds use that digest, and a patched base image (a new digest under
the same tag) changes the lock, the spec hash, and so rebuilds exactly what is built on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envrepo.engine.reference import split_image
from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs.sources import LockInput
from envrepo.lock.files import split
from envrepo.lock.request import Request
from envrepo.repo.paths import read_inside
from envrepo.repo.spec import Spec, python_agrees

PYTHON_LINE = "# python: "  # the base image's python, when its config says, under the reference


def tool_version() -> str:
    return "registry API v2"


def resolve(spec: Spec, item: LockInput, ancestors: Sequence[Spec], request: Request) -> str:
    reference = spec.base.value
    host, repository, tag = split_image(reference)
    # The registry client (requests, python-dxf) is loaded to resolve only: validate reads
    # locked_python and mismatch from this module and speaks to no registry.
    from envrepo.engine.registry import connect

    registry = connect(host, request.registry)
    architecture = spec.platforms[0].split("/", 1)[1]
    try:
        digest = registry.manifest_digest(repository, tag)
        config = registry.image_config(repository, digest, architecture) if digest else None
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
    python = python_of(config or {})
    if python is not None and not python_agrees(python, spec.python):
        raise EnvrepoError(mismatch(spec, python))
    return f"{reference}@{digest}\n" + (f"{PYTHON_LINE}{python}\n" if python else "")


def python_of(config: Mapping[str, Any]) -> str | None:
    """The python version an image's config announces (PYTHON_VERSION, as the official python
    images and many built on them set it)."""
    for item in (config.get("config") or {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        if key == "PYTHON_VERSION" and value:
            return value
    return None


def mismatch(spec: Spec, python: str) -> Problem:
    return Problem(
        spec.spec_display,
        "python",
        f"{spec.python!r} differs from python {python} of the base image {spec.base.value}; "
        "make them the same",
    )


def locked_python(spec: Spec, item: LockInput) -> str | None:
    """The base image's python as its lock recorded it, if it did."""
    text = read_inside(item.lock, spec.folder, item.lock_display(spec)).decode(errors="replace")
    for line in split(text)[1].splitlines():
        if line.startswith(PYTHON_LINE):
            return line.removeprefix(PYTHON_LINE).strip()
    return None
