"""`envrepo publish`: build records merged into the index, into a folder or a git branch.
Every record is checked first (pushed, clean, the tree's own hash, its packages as the locks
say, its image in the registry); versions are then assigned from the index as it is at the
moment of writing, under a lock (a folder) or by compare-and-swap (a branch), and the
registry's `:<version>` and `:latest` tags follow the index."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import git

from envrepo.engine.registry import Registry, connect
from envrepo.errors import EnvrepoError, Problem
from envrepo.hashing import hash_environments
from envrepo.image import naming
from envrepo.image import record as build_records
from envrepo.index.paths import (
    INDEX,
    INDEX_PAGE,
    Document,
    environment_page,
    version_path,
)
from envrepo.index.store import LOCK, IndexFolder
from envrepo.publish import branch, deprecations, html
from envrepo.publish.index import Deprecation, Outcome, Release, deprecate, merge
from envrepo.publish.release import chosen_records, make_sbom, release_of, source_url
from envrepo.repo import documents, graph
from envrepo.repo.files import exclusive
from envrepo.repo.spec import Catalog

Log = Callable[[str], None]


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
    outcome = merge(releases, store.read, now, make_sbom, source_url(), index_url)
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
    chosen, skipped = chosen_records(
        catalog, build_records.read_all(records) if records.is_dir() else []
    )
    notices = deprecations.read_all(catalog.repo)
    if not chosen and not notices:
        return Published(None, [], skipped)
    hashes = hash_environments(catalog, sorted(graph.with_ancestors(chosen, catalog.specs)))
    with git.Repo(root) as repo:
        releases = [
            release_of(catalog, chosen[name], hashes, registry, repo)
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
