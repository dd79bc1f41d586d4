"""How an image reference and a registry address are read, as Docker reads them, and the
address of images that live only in the local daemon."""

from __future__ import annotations

DOCKER_HUB = "registry-1.docker.io"


def split_image(reference: str) -> tuple[str, str, str]:
    """(registry host, repository, tag) of an image reference; a digest after `@` is
    dropped."""
    reference = reference.partition("@")[0]
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, reference if rest else f"library/{reference}"
    name, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
    return host, name, tag


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in ("localhost", "::1", "[::1]") or name.startswith("127.")


# The address of images that live only in the local daemon: a repository with no registry
# (a consumer's own environments) builds and runs them there. `.local` is never a host that
# a registry answers on, so nothing by this name is pulled or pushed by mistake.
LOCAL = "envrepo.local"
NO_REGISTRY = "no registry to push to: set registry in envrepo.yaml or pass --registry"
