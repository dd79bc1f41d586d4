"""A reference to a published environment, parsed once for every command that takes one:
NAME (its latest version, or this repository's environment where a command says so),
NAME@N, NAME@latest, NAME@sha-COMMIT (built or published from that commit), NAME@h-HASH (a
spec hash prefix) or NAME@sha256:DIGEST (the image's digest)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from envrepo.errors import EnvrepoError, Problem
from envrepo.index import tags
from envrepo.repo import schemas

Selector = Literal["latest", "number", "commit", "hash", "digest"]
FORMS = "NAME, NAME@VERSION, NAME@latest, NAME@sha-COMMIT, NAME@h-HASH or NAME@sha256:DIGEST"
# An environment's name as its spec's schema allows it.
_NAME = re.compile(schemas.load(schemas.ENVIRONMENT)["$defs"]["name"]["pattern"])
_SELECTORS: tuple[tuple[Selector, re.Pattern[str]], ...] = (
    ("number", re.compile(r"^[1-9][0-9]*$")),
    ("latest", re.compile(f"^{tags.LATEST}$")),
    ("commit", re.compile(f"^{tags.COMMIT}([0-9a-f]{{7,40}})$")),
    ("hash", re.compile(f"^{tags.HASH}([0-9a-f]{{6,64}})$")),
    ("digest", re.compile(r"^(sha256:[0-9a-f]{64})$")),
)


@dataclass(frozen=True)
class Reference:
    """`name`, and which of its versions: `selector` with its `value` (the number, the commit
    or hash prefix, the digest). `at` says whether the text had an @ at all: a bare NAME."""

    name: str
    selector: Selector = "latest"
    value: str = ""
    at: bool = False

    def __str__(self) -> str:
        if not self.at:
            return self.name
        prefix = {"commit": tags.COMMIT, "hash": tags.HASH}.get(self.selector, "")
        return f"{self.name}@{prefix}{self.value or 'latest'}"

    @property
    def number(self) -> int | None:
        return int(self.value) if self.selector == "number" else None


def parse(text: str) -> Reference:
    """The reference `text` writes; one line when it is none of the forms."""
    name, at, wanted = text.partition("@")
    if not _NAME.match(name):
        raise EnvrepoError(Problem(text, "", f"is not {FORMS}"))
    if not at:
        return Reference(name)
    for selector, pattern in _SELECTORS:
        matched = pattern.match(wanted)
        if matched:
            value = matched.group(1) if pattern.groups else wanted
            return Reference(name, selector, "" if selector == "latest" else value, True)
    raise EnvrepoError(Problem(text, "", f"is not {FORMS}"))


def release(document: dict[str, Any], reference: Reference) -> dict[str, Any]:
    """The release of an index environment document that `reference` names (the newest
    when a commit or hash prefix names several)."""
    releases: list[dict[str, Any]] = document["releases"]
    value = reference.value
    if reference.selector == "latest":
        found = [r for r in releases if str(r["number"]) == str(document["latest"])]
    elif reference.selector == "number":
        found = [r for r in releases if r["number"] == int(value)]
    elif reference.selector == "commit":
        found = [
            r
            for r in releases
            if r["commit"].startswith(value)
            or any(p["commit"].startswith(value) for p in r.get("published", []))
        ]
    elif reference.selector == "hash":
        found = [r for r in releases if r["hash"].startswith(value)]
    else:
        found = [
            r for r in releases if r["digest"] == value or value in r.get("platforms", {}).values()
        ]
    if not found:
        known = ", ".join(str(r["number"]) for r in releases)
        raise EnvrepoError(
            Problem(str(reference), "", f"no such version; {reference.name} has {known}")
        )
    return found[-1]
