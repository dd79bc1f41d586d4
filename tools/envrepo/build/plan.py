"""What would be built: environments whose spec hash has no image yet (or that changed since
a git ref), and every environment built on them, in waves that respect the base graph."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from envrepo.engine.registry import Registry
from envrepo.errors import EnvrepoError
from envrepo.hashing import SpecHash, hash_environments
from envrepo.repo import graph
from envrepo.repo.config import CONFIG_FILE, Repository, open_repository
from envrepo.repo.spec import Catalog, load_catalog


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
    paths = [repo.config.environments]
    if (repo.root / CONFIG_FILE).is_file():
        paths.append(CONFIG_FILE)
    done = subprocess.run(
        ["git", "archive", "--format=tar", ref, "--", *paths],
        cwd=repo.root,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise EnvrepoError(
            f"--since {ref}: {message[-1] if message else 'git archive failed'}; "
            "pass a commit, branch or tag of this repository"
        )
    with tempfile.TemporaryDirectory(prefix="envrepo-since-") as scratch:
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
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
        catalog = load_catalog(old)
        result = {}
        for name in catalog.specs:
            try:
                result[name] = hash_environments(catalog, [name])[name].digest
            except EnvrepoError:
                continue
        return result


def plan(
    catalog: Catalog,
    hashes: dict[str, SpecHash],
    registry: Registry | None,
    since: dict[str, str] | None = None,
) -> list[Planned]:
    reasons: dict[str, str] = {}
    for name, digest in hashes.items():
        if since is not None:
            if since.get(name) != digest.digest:
                reasons[name] = (
                    "new since the ref" if name not in since else "changed since the ref"
                )
        elif registry is not None and registry.manifest_digest(name, f"h-{digest.short}") is None:
            reasons[name] = "no image for its hash"
    for name in graph.descendants(reasons, catalog.specs):
        reasons.setdefault(name, "its base is rebuilt")
    waves = graph.waves(catalog.specs, reasons)
    return [
        Planned(name, hashes[name].digest, number, reasons[name])
        for number, wave in enumerate(waves)
        for name in wave
    ]


def matrix(planned: list[Planned]) -> dict[str, Any]:
    """What a GitHub Actions job matrix takes: one entry per environment, with its wave."""
    return {
        "include": [{"environment": p.name, "wave": p.wave, "hash": p.hash[:12]} for p in planned]
    }
