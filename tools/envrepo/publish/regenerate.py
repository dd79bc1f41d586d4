"""An index's documents and pages made again from its stored versions."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from envrepo.index.diff import summary
from envrepo.index.paths import (
    INDEX,
    INDEX_PAGE,
    Document,
    environment_page,
    environment_path,
    version_path,
)
from envrepo.index.store import IndexFolder
from envrepo.publish import html
from envrepo.publish.index import summary_entry

# Below this many environments per core, regenerating in one process is quicker.
PER_WORKER = 50


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
