"""An index in a folder: read document by document, written so that a reader never sees
half of it. A new version's files come first, then the documents that name them, each by
rename, and index.json last; a publish stopped at any moment leaves the index it found, or
that index with some new versions whole, and always readable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from envrepo.errors import EnvrepoError
from envrepo.index.paths import INDEX, INDEX_PAGE, Document

LOCK = ".envrepo-publish.lock"


def dumps(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def document(data: bytes, where: str) -> Document:
    """The index document in `data`; one line naming `where` when it is not one."""
    try:
        found = orjson.loads(data)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise EnvrepoError(
            f"{where}: is not a JSON document of an envrepo index; "
            "restore it from the index's history, or publish it again"
        )
    return found


class IndexFolder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def sweep(self) -> None:
        """Remove what a publish that was killed left half-written (never read: readers
        only follow names that documents give)."""
        for leftover in self.root.rglob(".*.tmp-*"):
            leftover.unlink(missing_ok=True)

    def read(self, path: str) -> Document | None:
        """The JSON document at `path` in the index, or None when there is none."""
        data = self.read_bytes(path)
        return None if data is None else document(data, str(self.root / path))

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def _put(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            temporary.write_bytes(data)
            temporary.replace(target)
        finally:
            temporary.unlink(missing_ok=True)

    def write(
        self,
        files: Mapping[str, bytes],
        documents: Mapping[str, Document],
        pages: Mapping[str, str],
    ) -> None:
        """Everything of one publish, in the order that keeps every reference whole."""
        for path, data in files.items():
            self._put(path, data)
        ordered = sorted(
            documents, key=lambda path: (path == INDEX, not path.endswith("/version.json"))
        )
        for path in ordered:
            if path != INDEX:
                self._put(path, dumps(documents[path]))
        for path, page in sorted(pages.items(), key=lambda item: item[0] == INDEX_PAGE):
            self._put(path, page.encode())
        if INDEX in documents:
            self._put(INDEX, dumps(documents[INDEX]))
