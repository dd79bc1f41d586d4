"""Pinning published environments, checking the pins and moving them. Every answer comes
from the index (versions, digests, deprecations, first-published times) and from the
registry by manifest HEAD requests, never a pull."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from envrepo.consume.lockfile import Pin, Pins, from_release
from envrepo.engine.reference import split_image
from envrepo.engine.registry import connect
from envrepo.errors import EnvrepoError, Problem
from envrepo.index.diff import Diff, diff
from envrepo.index.paths import version_path
from envrepo.index.read import Index
from envrepo.index.reference import Reference, release
from envrepo.repo.spec import Spec

Outcome = Literal["current", "newer", "changed", "gone", "deprecated"]
Log = Callable[[str], None]


def pin(pins: Pins, index: Index, wanted: Reference) -> tuple[Pins, Pin]:
    entry = release(index.environment(wanted.name), wanted)
    made = from_release(wanted.name, entry, index.location)
    return Pins({**pins.pins, wanted.name: made}), made


@dataclass(frozen=True)
class Checked:
    """What `pin --check` found for one pin: its outcome and the line that says it."""

    pin: Pin
    outcome: Outcome
    line: str
    newer: list[int] = field(default_factory=list)


def _deprecation(entry: dict[str, Any], document: dict[str, Any]) -> dict[str, Any] | None:
    notice = entry.get("deprecation") or document.get("deprecation")
    return notice if isinstance(notice, dict) else None


def check(item: Pin, index: Index) -> Checked:
    """One pin against its index and its registry."""
    shown = f"{item.name}@{item.version}"
    document = index.read(f"environments/{item.name}.json")
    if document is None:
        return Checked(
            item, "gone", f"{shown}: {item.name} is no longer in the index {index.location}"
        )
    entry = next((r for r in document["releases"] if r["number"] == item.version), None)
    if entry is None:
        return Checked(item, "gone", f"{shown}: version {item.version} is no longer in the index")
    if (entry["digest"], entry["hash"]) != (item.digest, item.hash):
        other = next((r for r in document["releases"] if r["digest"] == item.digest), None)
        if other is not None:
            return Checked(
                item,
                "changed",
                f"{shown}: the pin holds the digest of version {other['number']}: its version was "
                f"changed without the rest (by hand, or a bot); run envrepo pin {item.name}@{item.version}",
            )
        return Checked(
            item,
            "changed",
            f"{shown}: the index now names {entry['digest']} for this version, the pin "
            f"{item.digest}: the same version names another image; do not use it, find out why",
        )
    host, repository, _ = split_image(item.repository)
    registry = connect(host, None)
    if registry.manifest_digest(repository, item.digest) is None:
        return Checked(
            item, "gone", f"{shown}: its image {item.image} is no longer in registry {host}"
        )
    tagged = registry.manifest_digest(repository, str(item.version))
    if tagged is not None and tagged != item.digest:
        return Checked(
            item,
            "changed",
            f"{shown}: registry {host} now names {tagged} as {repository}:{item.version}, the "
            f"pin {item.digest}: the same version names another image; do not use it, find out why",
        )
    notice = _deprecation(entry, document)
    if notice is not None:
        replacement = notice.get("replacement")
        return Checked(
            item,
            "deprecated",
            f"{shown}: deprecated ({notice['reason']})"
            + (f"; move to {replacement}" if replacement else ""),
        )
    newer = [r["number"] for r in document["releases"] if r["number"] > item.version]
    if newer:
        listed = ", ".join(
            f"{r['number']} ({r['releaseTimestamp'][:10]})"
            for r in document["releases"]
            if r["number"] in newer
        )
        return Checked(
            item, "newer", f"{shown}: newer versions: {listed}; envrepo pin --update", newer
        )
    return Checked(item, "current", f"{shown}: up to date")


def base_checks(specs: list[Spec]) -> list[Checked]:
    """The environments of this repository built on a published environment whose index has
    a newer version of it than the one their lock recorded."""
    from envrepo.inputs.sources import lock_inputs
    from envrepo.lock import published

    found = []
    for spec in specs:
        if spec.base.kind != "published" or spec.base.index is None:
            continue
        lock = next(i for i in lock_inputs(spec) if i.field == "published")
        name, version = published.recorded(spec, lock)
        document = Index(spec.base.index).environment(name)
        newer = [r["number"] for r in document["releases"] if r["number"] > version]
        if newer:
            item = Pin(name, version, "", "", "", {}, "", "", spec.base.index)
            line = (
                f"{spec.display}: its base {name}@{version} has newer versions: "
                f"{', '.join(map(str, newer))}; change base.published and envrepo lock {spec.name}"
            )
            found.append(Checked(item, "newer", line, newer))
    return found


@dataclass(frozen=True)
class Move:
    name: str
    old: int
    new: int
    changes: Diff


def update(
    pins: Pins, name: str | None, min_age_days: float, now: datetime.datetime
) -> tuple[Pins, list[Move], list[str]]:
    """Each pin (or NAME's) moved to the newest version first published at least
    `min_age_days` ago, per the index's own times; the moves with their package diffs, and
    why the others stayed."""
    if name is not None and name not in pins.pins:
        raise EnvrepoError(Problem(name, "", "is not pinned here; envrepo pin NAME first"))
    cutoff = now - datetime.timedelta(days=min_age_days)
    moved: dict[str, Pin] = dict(pins.pins)
    moves: list[Move] = []
    stayed: list[str] = []
    for item in [pins.pins[name]] if name else list(pins.pins.values()):
        index = Index(item.index)
        document = index.environment(item.name)
        ripe = [
            r
            for r in document["releases"]
            if r["number"] > item.version
            and not r.get("isDeprecated")
            and datetime.datetime.fromisoformat(r["releaseTimestamp"]) <= cutoff
        ]
        if not ripe:
            stayed.append(f"{item.name}@{item.version}: nothing newer old enough to move to")
            continue
        target = max(ripe, key=lambda r: int(r["number"]))
        old = index.read(version_path(item.name, item.version))
        new = index.read(version_path(item.name, int(target["number"])))
        changes = diff((old or {}).get("packages"), (new or {}).get("packages") or {})
        moved[item.name] = from_release(item.name, target, item.index)
        moves.append(Move(item.name, item.version, int(target["number"]), changes))
    return Pins(moved), moves, stayed
