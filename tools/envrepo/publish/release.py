"""A build record made a release: checked against the tree (its hash, its packages as the
locks say, its image in the registry), with its folder's snapshot and its SBOM."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import git

from envrepo.engine.registry import Registry
from envrepo.errors import EnvrepoError, Problem
from envrepo.hashing import hash_environments
from envrepo.image import naming
from envrepo.image import record as build_records
from envrepo.inputs import sources
from envrepo.inputs import wheels as wheelfile
from envrepo.lock.locked import read_locked
from envrepo.publish import html
from envrepo.publish.index import Release
from envrepo.publish.packages import from_listing
from envrepo.publish.sbom import sbom
from envrepo.repo import graph
from envrepo.repo.spec import Catalog, Spec


def source_url() -> str | None:
    """Where the repository's commits can be seen: ENVREPO_SOURCE_URL, or the GitHub
    repository a workflow runs in."""
    given = os.environ.get("ENVREPO_SOURCE_URL")
    if given:
        return html.web_link(given)
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    return html.web_link(f"{server}/{repository}") if server and repository else None


def chosen_records(
    catalog: Catalog, records: Sequence[tuple[Path, dict[str, Any]]]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The newest record of each environment whose hash is the tree's, checked against the
    record's schema, and what was left out: records of environments no longer here, or of
    other states of their folders."""
    names = sorted({r["name"] for _, r in records if r["name"] in catalog.specs})
    hashes = hash_environments(catalog, names) if names else {}
    chosen: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for path, found in records:
        name = found["name"]
        if name not in catalog.specs:
            skipped.append(f"{path.name} (no such environment in the tree)")
        elif found.get("hash") != hashes[name].value:
            skipped.append(f"{path.name} (not the tree's spec hash)")
        else:
            chosen[name] = build_records.checked(path, found)
    return chosen, skipped


def _snapshot(repo: git.Repo, commit: str, folder: str) -> bytes:
    """The environment's folder as commit `commit` has it, as a reproducible tar.gz."""
    buffer = io.BytesIO()
    repo.archive(buffer, treeish=commit, format="tar", path=[folder])
    return gzip.compress(buffer.getvalue(), mtime=0)


def _base(spec: Spec, image: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {"text": spec.base.describe()}
    if spec.base.kind == "environment":
        base["environment"] = spec.base.value
    elif spec.base.kind == "image":
        base["image"] = image or spec.base.value
    return base


def release_of(
    catalog: Catalog,
    record: Mapping[str, Any],
    hashes: Mapping[str, Any],
    registry: Registry,
    repo: git.Repo,
) -> Release:
    """One record, checked, with what the index tells of it."""
    name = record["name"]
    spec = catalog.specs[name]
    shown = spec.display
    digest, commit = record["digest"], record["commit"]
    if digest is None:
        raise EnvrepoError(
            Problem(
                shown, "", "its build was not pushed, so it has no digest; run envrepo build --push"
            )
        )
    if record["dirty"] or not commit:
        raise EnvrepoError(
            Problem(
                shown,
                "",
                "was built from files that differ from a commit; commit them, build and publish again",
            )
        )
    if registry.manifest(name, digest) is None:
        raise EnvrepoError(
            Problem(
                shown,
                "",
                f"registry {registry.host} does not hold {registry.path(name)}@{digest[:19]}; "
                "run envrepo build --push",
            )
        )
    parent = catalog.specs.get(spec.parent or "")
    locked = read_locked(spec, hashes[name], parent)
    own = sources.private_files([spec, *graph.ancestors(name, catalog.specs)])
    private = {
        package: wheelfile.inspect(path, path.relative_to(catalog.repo.root).as_posix()).sha256
        for package, path in own.items()
    }
    packages = from_listing(record["packages"], locked, private=private)
    try:
        found = repo.commit(commit)
    except (ValueError, git.BadName):
        raise EnvrepoError(
            Problem(
                shown, "", f"commit {commit[:12]} of its build is not in this repository; fetch it"
            )
        ) from None
    folder = _snapshot(repo, commit, spec.folder.relative_to(catalog.repo.root).as_posix())
    return Release(
        name=name,
        hash=record["hash"],
        digest=digest,
        repository=naming.repository(registry.address, name),
        platform=record["platform"],
        tags=tuple(tag.rsplit(":", 1)[1] for tag in record["tags"]),
        commit=commit,
        subject=str(found.summary),
        committed=found.committed_datetime.astimezone(datetime.UTC).isoformat(),
        built=record["created"],
        python=spec.python,
        description=spec.description,
        labels=dict(spec.labels),
        base=_base(spec, locked.base_image),
        parent_hash=hashes[spec.parent].value if spec.parent else None,
        packages=packages,
        folder=folder,
        folder_sha256=hashlib.sha256(folder).hexdigest(),
        head=repo.head.commit.hexsha,
    )


def make_sbom(release: Release, number: int, base: Mapping[str, Any], now: str) -> str:
    image = f"{release.repository}@{release.digest}"
    return sbom(release.name, number, image, release.packages, base, now)
