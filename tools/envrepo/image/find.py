"""Finding an environment's image before making it: the registry holds its hash, or this
machine built it before. The same hash is the same image; its tests ran before when the
registry's tag, or this machine's record, says this image passed these tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from envrepo.engine.docker import Docker, Log
from envrepo.engine.registry import Registry
from envrepo.image import naming, package_listing, record
from envrepo.image.checks import Listing
from envrepo.image.record import Status, Tests
from envrepo.index.tags import tested_tag
from envrepo.lock.locked import Locked


@dataclass(frozen=True)
class Found:
    """An image found or made: in the daemon (`local`, an image ID) and, when the registry
    holds it, by manifest digest; the results of its tests when this exact image passed these
    exact tests before (from a build record, or the registry's `t-` tag)."""

    status: Status
    local: str | None = None
    digest: str | None = None
    results: tuple[Tests, Listing] | None = None
    size: int | None = None
    # The layer tars envrepo made or had for an image built now, by diff ID: its push
    # compresses those, not what the daemon would export.
    tars: Mapping[str, Path] = field(default_factory=dict)


def in_registry(registry: Registry, locked: Locked, tested: str, log: Log) -> Found | None:
    name = locked.spec.name
    tag = naming.hash_tag(locked.spec_hash)
    digest = registry.manifest_digest(name, tag)
    if digest is None:
        return None
    listing = None
    tested_there = registry.manifest_digest(name, tested_tag(tested)) == digest
    if tested_there:
        listing = package_listing.get(registry, name, locked.spec_hash, digest)
    if listing is not None:
        verdict = "its tests passed there"
    elif tested_there:
        verdict = "its package listing is not there, so its tests run again to read it"
    else:
        verdict = "its tests changed, they run now"
    repository = naming.repository(registry.address, name)
    log(f"{repository}:{tag} is in the registry already; {verdict}")
    return Found("cached", digest=digest, results=([], listing) if listing else None)


def here(
    engine: Docker, address: str, records: Path, locked: Locked, tested: str, log: Log
) -> Found | None:
    spec = locked.spec
    reference = naming.by_hash(address, spec.name, locked.spec_hash)
    image = engine.image(reference)
    if image is None:
        return None
    log(f"{reference} is built already")
    results = record.passed_before(records, spec.name, locked.spec_hash.value, image.id, tested)
    return Found("cached", local=image.id, results=results)
