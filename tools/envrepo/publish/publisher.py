"""`envrepo publish`: build records merged into the index, into a folder or a git branch.
Every record is checked first (pushed, clean, the tree's own hash, its packages as the locks
say, its image in the registry); versions are then assigned from the index as it is at the
moment of writing, under a lock (a folder) or by compare-and-swap (a branch), and the
registry's `:<version>` and `:latest` tags follow the index."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import git

from envrepo.engine.registry import Registry, connect
from envrepo.errors import EnvrepoError, Problem
from envrepo.hashing import hash_environments
from envrepo.image import naming
from envrepo.image import record as build_records
from envrepo.index.diff import Diff, summary
from envrepo.index.diff import diff as diff_packages
from envrepo.index.paths import (
    INDEX,
    INDEX_PAGE,
    Document,
    environment_page,
    environment_path,
    version_path,
)
from envrepo.index.read import Index
from envrepo.index.store import LOCK, IndexFolder
from envrepo.inputs import sources
from envrepo.inputs import wheels as wheelfile
from envrepo.lock.locked import read_locked
from envrepo.publish import branch, deprecations, html
from envrepo.publish.index import Deprecation, Outcome, Release, deprecate, merge, summary_entry
from envrepo.publish.packages import from_listing
from envrepo.publish.sbom import sbom
from envrepo.repo import documents, graph
from envrepo.repo.files import exclusive
from envrepo.repo.spec import Catalog, Spec

Log = Callable[[str], None]
# Below this many environments per core, regenerating in one process is quicker.
PER_WORKER = 50


@dataclass(frozen=True)
class Request:
    records: Path | None = None
    to: Path | None = None
    branch: str | None = None
    remote: str | None = None
    registry: str | None = None


@dataclass(frozen=True)
class Published:
    # None when there was nothing to publish: no build records and no deprecations.
    where: str | None
    versions: list[tuple[str, int, bool]]
    skipped: list[str]


def source_url() -> str | None:
    """Where the repository's commits can be seen: ENVREPO_SOURCE_URL, or the GitHub
    repository a workflow runs in."""
    given = os.environ.get("ENVREPO_SOURCE_URL")
    if given:
        return html.web_link(given)
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    return html.web_link(f"{server}/{repository}") if server and repository else None


def _chosen(
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


def _release(
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


def _make_sbom(release: Release, number: int, base: Mapping[str, Any], now: str) -> str:
    image = f"{release.repository}@{release.digest}"
    return sbom(release.name, number, image, release.packages, base, now)


def pages(
    documents: Mapping[str, Document], read: Callable[[str], Document | None]
) -> dict[str, str]:
    """The HTML pages of the environments whose documents changed, and the overview."""
    found: dict[str, str] = {}
    for path, document in documents.items():
        if path.count("/") != 1 or path == INDEX:
            continue
        name = document["name"]
        versions = [
            documents.get(version_path(name, e["number"])) or read(version_path(name, e["number"]))
            for e in document["releases"]
        ]
        found[environment_page(name)] = html.environment(document, versions)
    if INDEX in documents:
        found[INDEX_PAGE] = html.overview(documents[INDEX])
    return found


def apply(
    store: IndexFolder,
    releases: Sequence[Release],
    notices: Sequence[Deprecation],
    now: str,
    index_url: str | None = None,
) -> Outcome:
    """Publish `releases` and carry `notices` into the index in `store`."""
    outcome = merge(releases, store.read, now, _make_sbom, source_url(), index_url)
    deprecate(outcome.documents, store.read, notices)
    store.write(outcome.files, outcome.documents, pages(outcome.documents, store.read))
    return outcome


def _tag(registry: Registry, outcome: Outcome) -> None:
    for name, digest, tags in outcome.tags:
        if registry.manifest_digest(name, digest) is None:
            # The index names this image for a version; a registry that lost it (reset, or
            # replaced) cannot be told to tag it, and a new build of the same spec is not it.
            raise EnvrepoError(
                Problem(
                    f"{registry.host}/{registry.path(name)}",
                    "",
                    (
                        f"version {tags[0]} of the index is the image {digest}, which the "
                        "registry no longer has: push that image again, or publish into a "
                        "new index for this registry"
                    ),
                )
            )
        registry.add_tags(name, digest, tags)


def publish(catalog: Catalog, request: Request, log: Log) -> Published:
    root = catalog.repo.root
    host = naming.required_registry(catalog.repo, request.registry)
    registry = connect(host, host)
    records = request.records or root / ".envrepo" / "builds"
    if records.exists() and not records.is_dir():
        raise EnvrepoError(f"--records {records}: is not a folder; give the build records' folder")
    # No folder is no build: a CI run where the registry held every hash hands nothing over.
    chosen, skipped = _chosen(catalog, build_records.read_all(records) if records.is_dir() else [])
    notices = deprecations.read_all(catalog.repo)
    if not chosen and not notices:
        return Published(None, [], skipped)
    hashes = hash_environments(catalog, sorted(graph.with_ancestors(chosen, catalog.specs)))
    with git.Repo(root) as repo:
        releases = [
            _release(catalog, chosen[name], hashes, registry, repo)
            for name in graph.ordered(catalog.specs, chosen)
        ]
    index_url = html.web_link(catalog.repo.config.index_url)
    change = partial(
        apply,
        releases=releases,
        notices=notices,
        now=documents.now(),
        index_url=index_url,
    )
    if request.branch is not None:
        names = ", ".join(r.name for r in releases) or "deprecations"
        outcome = branch.publish(
            root, request.branch, request.remote, change, f"envrepo publish: {names}"
        )
        where = f"branch {request.branch}" + (f" of {request.remote}" if request.remote else "")
        _tag(registry, outcome)
    else:
        folder = request.to or root / catalog.repo.config.index_path
        if folder.exists() and not folder.is_dir():
            raise EnvrepoError(f"--to {folder}: is not a folder; give the index's folder")
        folder.mkdir(parents=True, exist_ok=True)
        with exclusive(folder / LOCK):
            store = IndexFolder(folder)
            store.sweep()
            outcome = change(store)
            _tag(registry, outcome)
        where = str(folder)
    for name, number, new in outcome.versions:
        log(f"{name}: version {number}" + (" (new)" if new else " (published before; latest)"))
    return Published(where, outcome.versions, skipped)


def _regenerate_environment(root: Path, name: str) -> tuple[str, Document] | None:
    """One environment's document and page made again from its stored versions."""
    store = IndexFolder(root)
    document = store.read(environment_path(name))
    if document is None:
        return None
    versions = [store.read(version_path(name, e["number"])) for e in document["releases"]]
    for entry, version in zip(document["releases"], versions, strict=True):
        if version is not None:
            entry["summary"] = summary(version["diff"])
    page = html.environment(document, versions)
    store.write({}, {environment_path(name): document}, {environment_page(name): page})
    return name, summary_entry(document)


def regenerate(store: IndexFolder) -> int:
    """Every environment's document and page, index.json and the overview made again from
    the stored versions (their documents, SBOMs and folders are written once, when a version
    is first published, and never change). How many versions the index holds. No registry
    is asked; the environments are shared out over the machine's cores."""
    index = store.read(INDEX) or {"format": 1, "environments": {}}
    names = sorted(index["environments"])
    work = partial(_regenerate_environment, store.root)
    workers = min(os.cpu_count() or 1, max(1, len(names) // PER_WORKER))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(work, names, chunksize=max(1, len(names) // (workers * 8))))
    else:
        results = [work(name) for name in names]
    for found in results:
        if found is not None:
            index["environments"][found[0]] = found[1]
    store.write({}, {INDEX: index}, {INDEX_PAGE: html.overview(index)})
    return sum(entry["versions"] for entry in index["environments"].values())


def against_published(catalog: Catalog, index: Index) -> list[tuple[str, int | None, Diff]]:
    """Each build record of the tree's own hashes, against its environment's latest version
    in the index: (name, that version or None, the package diff). For a pull request's
    summary: what merging it would change, before anything is published."""
    chosen, _ = _chosen(catalog, build_records.read_all(catalog.repo.root / ".envrepo" / "builds"))
    # An index not published yet is an empty one.
    empty = index.folder is not None and not index.folder.root.is_dir()
    found = []
    for name in graph.ordered(catalog.specs, chosen):
        installed = {
            ecosystem: {n: {"version": entry[0]} for n, entry in packages.items()}
            for ecosystem, packages in chosen[name]["packages"].items()
        }
        document = None if empty else index.read(environment_path(name))
        latest = int(document["latest"]) if document else None
        before = index.read(version_path(name, latest)) if latest else None
        found.append((name, latest, diff_packages((before or {}).get("packages"), installed)))
    return found


def markdown(found: Sequence[tuple[str, int | None, Diff]]) -> str:
    """The pull request's job summary: per built environment, its package changes."""
    lines = ["### envrepo: package changes against the published index", ""]
    for name, version, changes in found:
        since = f"version {version}" if version else "nothing published yet"
        lines.append(f"**{name}** (against {since}): {summary(changes)}")
        lines.append("")
        rows = [
            f"| {ecosystem} | {kind} | `{item['name']}` | {item.get('from', '')} | {item.get('to', '')} |"
            for ecosystem, kinds in changes.items()
            for kind, items in kinds.items()
            for item in items
        ]
        if rows and version:
            lines += [
                "| ecosystem | change | package | from | to |",
                "|---|---|---|---|---|",
                *rows,
                "",
            ]
    return "\n".join(lines)
