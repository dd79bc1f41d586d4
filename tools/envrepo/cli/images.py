"""The image a run or a service uses, for `envrepo run` and `envrepo serve` alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envrepo.cli.options import State, index_location
from envrepo.cli.report import note
from envrepo.errors import EnvrepoError
from envrepo.index.reference import parse, release

if TYPE_CHECKING:
    from envrepo.engine.docker import Docker
    from envrepo.engine.registry import Registry
    from envrepo.hashing import SpecHash
    from envrepo.run import Environment


def environment(
    state: State, reference: str, location: str | None, registry: str | None, engine: Docker
) -> Environment:
    """The image a run or a service uses. NAME@VERSION: the pin in envrepo.lock, else the
    index, pulled by digest. NAME: this repository's environment at its current spec hash,
    from this machine, else the registry, else built now."""
    from envrepo.engine.credentials import credentials
    from envrepo.engine.reference import split_image
    from envrepo.image import naming
    from envrepo.run import Environment

    wanted = parse(reference)
    name = wanted.name
    if wanted.at:
        from envrepo.consume import lockfile
        from envrepo.index.read import Index

        pinned = lockfile.read(state.repository().root).pins.get(name)
        if pinned is not None and wanted.number == pinned.version:
            found = Environment(name, pinned.version, pinned.hash, pinned.image, pinned.digest)
        else:
            entry = release(Index(index_location(state, location)).environment(name), wanted)
            found = Environment(
                name, int(entry["number"]), entry["hash"], entry["image"], entry["digest"]
            )
        if engine.image(found.image) is None:
            note(f"pulling {found.image}")
            host = split_image(found.image)[0]
            creds = credentials(host, None)
            engine.pull(found.image, creds.for_docker() if creds else None)
        return found
    from envrepo.hashing import hash_environments
    from envrepo.repo.spec import get

    catalog = state.catalog()
    spec = get(catalog, name)
    spec_hash = hash_environments(catalog, [spec.name])[spec.name]
    host = naming.local_or_registry(catalog.repo, registry)
    image = naming.by_hash(host, spec.name, spec_hash)
    if engine.image(image) is None:
        from envrepo.image.batch import Request, build_environments

        note(f"{image} is not on this machine: building it")
        outcome = build_environments(catalog, Request(names=(spec.name,), registry=registry), note)
        if outcome.failed:
            raise EnvrepoError(*[line for error in outcome.failed for line in error.lines])
    digest = None if host == naming.LOCAL else _digest(host, spec.name, spec_hash)
    return Environment(spec.name, None, spec_hash.value, image, digest)


def _digest(host: str, name: str, spec_hash: SpecHash) -> str | None:
    """The registry's manifest digest of the image with this hash; None when it holds none
    or cannot be asked (a run on this machine's image goes on without it)."""
    from envrepo.engine.registry import connect
    from envrepo.image import naming

    try:
        return connect(host, host).manifest_digest(name, naming.hash_tag(spec_hash))
    except EnvrepoError:
        return None


def registry_of(state: State, given: str | None) -> Registry:
    """The registry models are kept in: --registry, else the repository's."""
    from envrepo.engine.registry import connect
    from envrepo.image import naming

    repo = state.repository()
    return connect(naming.required_registry(repo, given), repo.config.registry)
