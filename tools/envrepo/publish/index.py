"""The index's documents and how a publish changes them, as pure functions of the documents
read before and the releases to publish. Versions are assigned here and only here: a spec
hash new to an environment gets the next number, a hash it has already (a revert, the same
state again) gets none and becomes `latest` again. History is only ever appended to.

    index.json                               every environment: latest, description, deprecation
    environments/<name>.json                 every version of one environment (Renovate reads it)
    environments/<name>/<v>/version.json     its packages and the diff against version v-1
    environments/<name>/<v>/sbom.cdx.json    CycloneDX
    environments/<name>/<v>/folder.tar.gz    the environment's folder as it was
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envrepo import __version__
from envrepo.index.diff import Diff, Packages, diff, summary
from envrepo.index.paths import (
    FORMAT,
    INDEX,
    Document,
    environment_page,
    environment_path,
    folder_path,
    sbom_path,
    version_path,
)
from envrepo.index.tags import published_tags


@dataclass(frozen=True)
class Release:
    """One environment's image as a build record and the repository tell it, ready to be
    published: a version when its hash is new to the index, only `latest` otherwise."""

    name: str
    hash: str
    digest: str
    repository: str
    platform: str
    tags: tuple[str, ...]
    commit: str
    subject: str
    committed: str
    built: str
    python: str
    description: str
    labels: Mapping[str, str]
    base: Mapping[str, Any]
    # The parent environment's spec hash: its version is looked up as this one is published.
    parent_hash: str | None
    packages: Packages
    folder: bytes = field(repr=False)
    folder_sha256: str = ""
    # The commit the publish runs at (its tree has this hash): a revert publishes from its own.
    head: str | None = None


@dataclass(frozen=True)
class Deprecation:
    """A `deprecate` record: the whole environment (version None) or one version."""

    name: str
    version: int | None
    reason: str
    replacement: str | None
    date: str


@dataclass(frozen=True)
class Outcome:
    """What a publish changes: documents by path (written after every file in `files`),
    the files of new versions, and what the registry must be told (repository, digest, tags)."""

    documents: dict[str, Document]
    files: dict[str, bytes]
    tags: list[tuple[str, str, list[str]]]
    versions: list[tuple[str, int, bool]]  # name, number, new


Reader = Callable[[str], Document | None]
MakeSbom = Callable[[Release, int, Mapping[str, Any], str], str]


def _release_entry(release: Release, number: int, base: Mapping[str, Any], now: str) -> Document:
    return {
        "version": str(number),
        "number": number,
        "hash": release.hash,
        "digest": release.digest,
        "image": f"{release.repository}@{release.digest}",
        "platforms": {release.platform: release.digest},
        "tags": sorted({*release.tags, str(number)}),
        "commit": release.commit,
        "subject": release.subject,
        "committed": release.committed,
        "built": release.built,
        "releaseTimestamp": now,
        "published": [{"commit": release.head or release.commit, "time": now}],
        "base": dict(base),
        "python": release.python,
        "isDeprecated": False,
        "deprecation": None,
        "version_document": version_path(release.name, number),
        "sbom": sbom_path(release.name, number),
        "folder": {"path": folder_path(release.name, number), "sha256": release.folder_sha256},
    }


def _base(release: Release, documents: Mapping[str, Document]) -> dict[str, Any]:
    """The base as the index tells it: a parent environment by name, version and digest."""
    base = dict(release.base)
    parent = base.get("environment")
    if parent and release.parent_hash:
        for entry in (documents.get(environment_path(parent)) or {}).get("releases", []):
            if entry["hash"] == release.parent_hash:
                base.update(version=entry["number"], digest=entry["digest"])
    return base


def merge(
    releases: Sequence[Release],
    read: Reader,
    now: str,
    make_sbom: MakeSbom,
    source_url: str | None = None,
    index_url: str | None = None,
) -> Outcome:
    """Publish `releases` (parents before children) onto the index `read` gives."""
    documents: dict[str, Document] = {}
    files: dict[str, bytes] = {}
    tags: list[tuple[str, str, list[str]]] = []
    versions: list[tuple[str, int, bool]] = []
    index = read(INDEX) or {"format": FORMAT, "environments": {}}
    for release in releases:
        path = environment_path(release.name)
        document = documents.get(path) or read(path) or {"name": release.name, "releases": []}
        document.setdefault("deprecation", None)
        entries: list[Document] = document["releases"]
        base = _base(release, documents)
        known = next((e for e in entries if e["hash"] == release.hash), None)
        if known is not None:
            number = int(known["number"])
            head = release.head or release.commit
            if all(p["commit"] != head for p in known["published"]):
                known["published"].append({"commit": head, "time": now})
            versions.append((release.name, number, False))
        else:
            number = max((int(e["number"]) for e in entries), default=0) + 1
            previous = read(version_path(release.name, number - 1)) if number > 1 else None
            changes = diff(previous["packages"] if previous else None, release.packages)
            known = _release_entry(release, number, base, now)
            known["summary"] = summary(changes)
            entries.append(known)
            documents[version_path(release.name, number)] = version_document(
                release.name, number, known, release.packages, changes
            )
            files[sbom_path(release.name, number)] = make_sbom(release, number, base, now).encode()
            files[folder_path(release.name, number)] = release.folder
            versions.append((release.name, number, True))
        document.update(
            latest=str(number),
            description=release.description,
            labels=dict(release.labels),
        )
        if source_url:
            document["sourceUrl"] = source_url
        if index_url:
            page = f"{index_url.rstrip('/')}/{environment_page(release.name)}"
            document["homepage"] = page
            known.setdefault("changelogUrl", f"{page}#v{number}")
        documents[path] = document
        # Tagging is idempotent: a publish stopped before it is made whole by the next.
        tags.append((release.name, str(known["digest"]), published_tags(number)))
        index["environments"][release.name] = summary_entry(document)
    index["format"] = FORMAT
    index["updated"] = now
    index["envrepo"] = __version__
    documents[INDEX] = index
    return Outcome(documents, files, tags, versions)


def version_document(
    name: str, number: int, entry: Mapping[str, Any], packages: Packages, changes: Diff
) -> Document:
    return {
        "name": name,
        "version": number,
        "hash": entry["hash"],
        "digest": entry["digest"],
        "previous": number - 1 if number > 1 else None,
        "packages": packages,
        "diff": changes,
        "sbom": "sbom.cdx.json",
        "folder": {"path": "folder.tar.gz", "sha256": entry["folder"]["sha256"]},
    }


def summary_entry(document: Mapping[str, Any]) -> Document:
    """What index.json tells of one environment."""
    return {
        "latest": document["latest"],
        "description": document.get("description", ""),
        "versions": len(document["releases"]),
        "deprecation": document.get("deprecation"),
        "document": environment_path(document["name"]),
        "page": environment_page(document["name"]),
    }


def deprecate(documents: dict[str, Document], read: Reader, records: Sequence[Deprecation]) -> None:
    """Carry the repository's deprecation records into the documents (read when not there
    yet); a record for an environment or version the index does not have is left for later."""
    index = documents.get(INDEX) or read(INDEX) or {"format": FORMAT, "environments": {}}
    for record in records:
        path = environment_path(record.name)
        document = documents.get(path) or read(path)
        if document is None:
            continue
        notice = {"reason": record.reason, "replacement": record.replacement, "date": record.date}
        if record.version is None:
            document["deprecation"] = notice
            document["deprecationMessage"] = _message(notice)
        for entry in document["releases"]:
            if record.version in (None, entry["number"]) and entry.get("deprecation") is None:
                entry["deprecation"] = notice
                entry["isDeprecated"] = True
        documents[path] = document
        index["environments"][record.name] = summary_entry(document)
    documents[INDEX] = index


def _message(notice: Mapping[str, Any]) -> str:
    replacement = notice.get("replacement")
    return str(notice["reason"]) + (f"; use {replacement} instead" if replacement else "")
