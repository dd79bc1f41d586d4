"""What would be built: environments whose spec hash has no image yet (or that changed since
a git ref), and every environment built on them, in waves that respect the base graph."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from envrepo.engine.registry import Registry, connect
from envrepo.errors import EnvrepoError
from envrepo.hashing import SpecHash, hash_environments, hash_tree
from envrepo.image.naming import hash_tag, required_registry
from envrepo.repo import graph
from envrepo.repo.config import CONFIG_FILE, Repository, open_repository
from envrepo.repo.spec import Catalog, get, load_catalog


@dataclass(frozen=True)
class Planned:
    name: str
    hash: str
    wave: int
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash, "wave": self.wave, "reason": self.reason}


def hashes_at(repo: Repository, ref: str) -> dict[str, str]:
    """The spec hashes of every environment as the repository had them at git `ref`."""
    from envrepo.repo import git

    paths = [repo.config.environments]
    if (repo.root / CONFIG_FILE).is_file():
        paths.append(CONFIG_FILE)
    tar = git.archive(repo.root, ref, paths)
    with tempfile.TemporaryDirectory(prefix="envrepo-since-") as scratch:
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            # Regular files and folders only, inside the scratch folder: what git archive of
            # environments can hold, without trusting it (Python 3.11.2 has no tar filters).
            safe = [
                m
                for m in archive.getmembers()
                if (m.isfile() or m.isdir())
                and not m.name.startswith("/")
                and ".." not in PurePosixPath(m.name).parts
            ]
            archive.extractall(scratch, members=safe)
        old, _ = open_repository(Path(scratch), explicit=True)
        hashes = hash_tree(load_catalog(old))
        return {name: found.value for name, found in hashes.items() if found is not None}


def plan(
    catalog: Catalog,
    hashes: dict[str, SpecHash],
    registry: Registry | None,
    since: dict[str, str] | None = None,
) -> list[Planned]:
    reasons: dict[str, str] = {}
    for name, spec_hash in hashes.items():
        if since is not None:
            if since.get(name) != spec_hash.value:
                reasons[name] = (
                    "new since the ref" if name not in since else "changed since the ref"
                )
        elif registry is not None and registry.manifest_digest(name, hash_tag(spec_hash)) is None:
            reasons[name] = "no image for its hash"
    for name in graph.descendants(reasons, catalog.specs):
        reasons.setdefault(name, "its base is rebuilt")
    waves = graph.waves(catalog.specs, reasons)
    return [
        Planned(name, hashes[name].value, number, reasons[name])
        for number, wave in enumerate(waves)
        for name in wave
    ]


def matrix(planned: list[Planned]) -> dict[str, Any]:
    """What a GitHub Actions job matrix takes: one entry per environment, with its wave."""
    return {
        "include": [{"environment": p.name, "wave": p.wave, "hash": p.hash[:12]} for p in planned]
    }


def wave_outputs(planned: list[Planned], jobs: int) -> list[str]:
    """`waveN=<job matrix>` for each of a workflow's `jobs` wave jobs (an empty matrix where
    a wave has nothing); an error when the plan has more waves than the workflow has jobs."""
    waves = max((p.wave for p in planned), default=-1) + 1
    if waves > jobs:
        raise EnvrepoError(
            f"the plan has {waves} waves and the workflow {jobs} wave jobs; add jobs wave{jobs}"
            f"..wave{waves - 1} to the workflow, and pass --waves {waves}"
        )
    return [
        f"wave{n}=" + json.dumps(matrix([p for p in planned if p.wave == n]), sort_keys=True)
        for n in range(jobs)
    ]


def to_build(
    catalog: Catalog,
    hashes: dict[str, SpecHash],
    registry: Registry,
    names: Sequence[str],
    changed: bool,
) -> list[str]:
    """What a build takes on: what the plan lists (`changed`), else `names` (all when none)
    with the environments they are built on."""
    if changed:
        return [p.name for p in plan(catalog, hashes, registry)]
    chosen = [get(catalog, name).name for name in names] or list(catalog.specs)
    return sorted(graph.with_ancestors(chosen, catalog.specs))


@dataclass(frozen=True)
class Blocked:
    """An environment the plan would build, but that cannot be: the first problem why."""

    name: str
    why: str


def blocked(catalog: Catalog, planned: list[Planned]) -> list[Blocked]:
    """The planned environments with a problem that stops their build (a missing or stale
    lock, a broken input), and those built on them."""
    from envrepo.validate import environment_problems

    parent_of = graph.parents(catalog.specs)
    found: dict[str, str] = {}
    for item in planned:
        if item.name in found:
            continue
        errors = [
            p
            for p in environment_problems(catalog.specs[item.name], catalog, parent_of)
            if p.is_error
        ]
        if errors:
            found[item.name] = errors[0].line()
            for name in graph.descendants([item.name], catalog.specs):
                found.setdefault(name, f"its base {item.name} cannot be built")
    return [Blocked(p.name, found[p.name]) for p in planned if p.name in found]


@dataclass(frozen=True)
class Plan:
    buildable: list[Planned]
    blocked: list[Blocked]


def plan_repository(catalog: Catalog, registry: str | None, since: str | None) -> Plan:
    """The plan against git ref `since`, else against the registry (`--registry`, else the
    configured one), and what of it cannot be built, and why."""
    hashes = hash_environments(catalog)
    if since is not None:
        planned = plan(catalog, hashes, None, hashes_at(catalog.repo, since))
    else:
        address = required_registry(catalog.repo, registry)
        planned = plan(catalog, hashes, connect(address, address))
    stopped = blocked(catalog, planned)
    names = {b.name for b in stopped}
    return Plan([p for p in planned if p.name not in names], stopped)
