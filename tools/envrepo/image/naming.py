"""How images are named: which registry, an environment's repository there, and its tags (as
`index.tags` spells them) by spec hash and commit."""

from __future__ import annotations

import os
import re

from envrepo.engine.reference import LOCAL as LOCAL
from envrepo.engine.reference import NO_REGISTRY
from envrepo.errors import EnvrepoError
from envrepo.hashing import SpecHash
from envrepo.index import tags
from envrepo.repo import schemas
from envrepo.repo.config import Repository

DOCKERFILE_BASES = "envrepo-base"  # local images built from an environment's own Dockerfile


def registry_host(repo: Repository, given: str | None) -> str | None:
    """--registry, else $ENVREPO_REGISTRY, else envrepo.yaml's registry."""
    return given or os.environ.get("ENVREPO_REGISTRY") or repo.config.registry


def local_or_registry(repo: Repository, given: str | None) -> str:
    """The registry by the rule above, else `LOCAL`: what builds and runs on this machine's
    daemon alone need, where a repository has no registry of its own."""
    return required_registry(repo, given) if registry_host(repo, given) else LOCAL


def required_registry(repo: Repository, given: str | None) -> str:
    """The registry by the rule above; an error when there is none or it is no host."""
    host = registry_host(repo, given)
    if not host:
        raise EnvrepoError(NO_REGISTRY)
    # The rule envrepo.yaml's schema gives `registry`, for hosts from --registry too.
    pattern = schemas.load(schemas.CONFIG)["properties"]["registry"]["pattern"]
    if not re.match(pattern, host):
        raise EnvrepoError(
            f"{host!r} is not a registry host[:port][/path]; fix --registry or envrepo.yaml"
        )
    return host


def hash_tag(spec_hash: SpecHash) -> str:
    return tags.hash_tag(spec_hash.short)


def listing_tag(spec_hash: SpecHash) -> str:
    """The tag of what the image with this hash has installed, as its tests read it."""
    return tags.listing_tag(spec_hash.short)


def build_tags(spec_hash: SpecHash, commit: str | None) -> list[str]:
    """The tags a build gives, the hash tag first; `:<version>` and `:latest` are publish's."""
    return [hash_tag(spec_hash), *([tags.commit_tag(commit)] if commit else [])]


def repository(host: str, name: str) -> str:
    return f"{host}/{name}"


def by_hash(host: str, name: str, spec_hash: SpecHash) -> str:
    """The reference of an environment's image by its spec hash."""
    return f"{repository(host, name)}:{hash_tag(spec_hash)}"


def dockerfile_base(name: str, spec_hash: SpecHash) -> str:
    """The local tag of the image an environment's own Dockerfile builds."""
    return f"{DOCKERFILE_BASES}/{name}:{hash_tag(spec_hash)}"
