"""Reading a published index, document by document, from a folder, a file:// URL or an
http(s):// URL (with an Authorization header from ENVREPO_INDEX_AUTHORIZATION, or the
machine's entry in ~/.netrc): what `list`, `show` and `diff` tell of it. A reader fetches only
the documents it needs: index.json to list, one environment's document and one version's to
show."""

from __future__ import annotations

import base64
import netrc
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from envrepo.errors import EnvrepoError, Problem
from envrepo.index.diff import Diff, diff
from envrepo.index.paths import INDEX, Document, environment_path, version_path
from envrepo.index.reference import Reference, release
from envrepo.index.store import IndexFolder, document
from envrepo.repo import schema, schemas

AUTHORIZATION = "ENVREPO_INDEX_AUTHORIZATION"
# Far above any document publish writes (an environment with ten thousand versions is a few
# MiB): a bigger one is not an index's, and is not read into memory.
MAX_DOCUMENT = 32 << 20
_ENVIRONMENT_DOCUMENT = re.compile(r"^environments/[^/]+\.json$")


def _schema_of(path: str) -> str | None:
    """The schema of the index document at `path`."""
    if path == INDEX:
        return schemas.INDEX
    if _ENVIRONMENT_DOCUMENT.match(path):
        return schemas.INDEX_ENVIRONMENT
    return schemas.INDEX_VERSION if path.endswith("/version.json") else None


class Index:
    """A published index at `location`; `fetched` counts the bytes read from it."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.fetched = 0
        parts = urlsplit(location)
        self.url: str | None = None
        self.folder: IndexFolder | None = None
        if parts.scheme in ("http", "https"):
            self.url = location.rstrip("/") + "/"
        elif parts.scheme == "file":
            self.folder = IndexFolder(Path(unquote(parts.path)))
        elif parts.scheme and len(parts.scheme) > 1:
            raise EnvrepoError(
                f"--index {location}: {parts.scheme}: is not a kind of location envrepo reads; "
                "give a folder, a file:// or an http(s):// URL"
            )
        else:
            self.folder = IndexFolder(Path(location))

    def _headers(self) -> dict[str, str]:
        given = os.environ.get(AUTHORIZATION)
        if given:
            return {"Authorization": given}
        host = urlsplit(self.url or "").hostname or ""
        try:
            found = netrc.netrc().authenticators(host)
        except (FileNotFoundError, netrc.NetrcParseError):
            found = None
        if found and found[0] is not None:
            token = base64.b64encode(f"{found[0]}:{found[2] or ''}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def read_bytes(self, path: str) -> bytes | None:
        if self.folder is not None:
            if not self.folder.root.is_dir():
                raise EnvrepoError(
                    f"--index {self.location}: no such folder; give the folder publish wrote"
                )
            data = self.folder.read_bytes(path)
        else:
            data = self._get(path)
        self.fetched += len(data or b"")
        return data

    def _get(self, path: str) -> bytes | None:
        # Loaded here: a folder index is read without the HTTP client.
        from envrepo.engine import http

        url = f"{self.url}{path}"
        try:
            data = http.get(url, self._headers(), limit=MAX_DOCUMENT)
        except http.HTTPError as error:
            if error.status == 404:
                return None
            if error.status is None:
                raise EnvrepoError(
                    f"--index {url}: cannot be read ({error.reason}); check the URL and the network"
                ) from None
            hint = (
                f"set {AUTHORIZATION} or a ~/.netrc entry for the host"
                if error.status in (401, 403)
                else "check the index's server"
            )
            raise EnvrepoError(
                f"--index {url}: HTTP {error.status} {error.reason}; {hint}"
            ) from None
        if len(data) > MAX_DOCUMENT:
            raise EnvrepoError(
                f"--index {url}: is larger than {MAX_DOCUMENT >> 20} MiB, which no document of an "
                "envrepo index is; check the index's server"
            )
        return data

    def read(self, path: str) -> Document | None:
        """The document at `path`, checked against its schema: what a reader takes from it
        is there and of its type, or the command stops with one line naming the field."""
        data = self.read_bytes(path)
        if data is None:
            return None
        shown = f"{self.location.rstrip('/')}/{path}"
        found = document(data, shown)
        schema_name = _schema_of(path)
        problems = schema.violations(found, schema_name, shown) if schema_name else []
        if problems:
            first = problems[0]
            raise EnvrepoError(
                Problem(
                    first.path,
                    first.field,
                    f"{first.message} (a malformed index: publish it again, or use another)",
                )
            )
        return found

    def top(self) -> Document:
        found = self.read(INDEX)
        if found is None:
            raise EnvrepoError(
                f"--index {self.location}: has no {INDEX}; give the place envrepo publish wrote to"
            )
        return found

    def environment(self, name: str) -> Document:
        found = self.read(environment_path(name))
        if found is None:
            raise EnvrepoError(
                Problem(
                    name, "", f"is not in the index at {self.location}; see envrepo list --index"
                )
            )
        return found


@dataclass(frozen=True)
class Version:
    """One version as `show` tells it: its entry in the environment's document and its
    version document (packages and diff)."""

    environment: Document
    entry: Document
    document: Document


def version(index: Index, wanted: Reference) -> Version:
    """The version `wanted` names (any form of reference), from `index`."""
    document = index.environment(wanted.name)
    entry = release(document, wanted)
    number = int(entry["number"])
    found = index.read(version_path(wanted.name, number))
    if found is None:
        raise EnvrepoError(
            f"{index.location}: {version_path(wanted.name, number)} is missing; "
            "publish the index again"
        )
    return Version(document, entry, found)


HEADERS = ("NAME", "LATEST", "VERSIONS", "DESCRIPTION")


def listing(index: Index) -> tuple[list[list[str]], Document]:
    top = index.top()
    rows = []
    for name, entry in sorted(top["environments"].items()):
        description = str(entry.get("description") or "")
        if entry.get("deprecation"):
            description = f"[deprecated] {description}"
        rows.append([name, str(entry["latest"]), str(entry["versions"]), description])
    return rows, top


def fields(found: Version) -> list[tuple[str, str]]:
    entry, document = found.entry, found.environment
    packages = found.document.get("packages") or {}
    deprecation = entry.get("deprecation") or document.get("deprecation")
    base = entry.get("base") or {}
    return [
        ("name", document["name"]),
        (
            "version",
            f"{entry['number']}" + (" (latest)" if entry["version"] == document["latest"] else ""),
        ),
        ("description", str(document.get("description") or "-")),
        ("labels", ", ".join(f"{k}={v}" for k, v in (document.get("labels") or {}).items()) or "-"),
        ("image", entry["image"]),
        ("pull", f"docker pull {entry['image']}"),
        ("hash", entry["hash"]),
        (
            "base",
            str(base.get("text", "-"))
            + (f" version {base['version']}" if base.get("version") else ""),
        ),
        ("python", entry["python"]),
        ("published", entry["releaseTimestamp"]),
        ("built", entry["built"]),
        ("commit", f"{entry['commit'][:12]} {entry['subject']}"),
        ("packages", ", ".join(f"{k} {len(v)}" for k, v in packages.items())),
        ("changes", str(entry.get("summary", "-"))),
        ("deprecated", _deprecation(deprecation) if deprecation else "no"),
    ]


def _deprecation(notice: dict[str, Any]) -> str:
    replacement = notice.get("replacement")
    return str(notice["reason"]) + (f"; use {replacement}" if replacement else "")


def compare(index: Index, first: Reference, second: Reference | None) -> tuple[str, str, Diff]:
    """NAME@A against NAME@B, or against the version before A: (from, to, diff)."""
    if not first.at:
        raise EnvrepoError(Problem(str(first), "", "give NAME@VERSION; diff compares two versions"))
    chosen = version(index, first)
    if second is None:
        number = int(chosen.entry["number"])
        if number == 1:
            raise EnvrepoError(
                Problem(str(first), "", "is the first version; give the version to compare with")
            )
        earlier = Reference(first.name, "number", str(number - 1), True)
        before, after, old, new = version(index, earlier), chosen, str(earlier), str(first)
    else:
        before, after, old, new = chosen, version(index, second), str(first), str(second)
    return old, new, diff(before.document.get("packages"), after.document.get("packages") or {})
