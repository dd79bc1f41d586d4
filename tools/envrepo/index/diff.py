"""The classified difference between two versions' packages, per ecosystem: added, removed,
and changed by the first part of the version that moved (major, minor, patch; `other` when
a version has no leading numbers to compare)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ECOSYSTEMS = ("apt", "conda", "pip")
# A version's packages: ecosystem → name → {"version", "purl", and "license", "hashes" when known}
Packages = dict[str, dict[str, dict[str, Any]]]
KINDS = ("added", "removed", "major", "minor", "patch", "other")
_NUMBERS = re.compile(r"\d+(?:\.\d+)*")
# A Debian version: [epoch:]upstream[-revision]
_DEBIAN = re.compile(r"^(?:(\d+):)?(.+?)(?:-([^-]+))?$")


def _parts(ecosystem: str, version: str) -> tuple[int, ...] | None:
    """The numbers a version starts with, the epoch first; None when it has none."""
    epoch = 0
    if ecosystem == "apt":
        found = _DEBIAN.match(version)
        if found is None:
            return None
        epoch, version = int(found.group(1) or 0), found.group(2)
    elif "!" in version:
        head, _, version = version.partition("!")
        epoch = int(head) if head.isdigit() else 0
    numbers = _NUMBERS.match(version)
    if numbers is None:
        return None
    return (epoch, *(int(part) for part in numbers.group(0).split(".")))


def classify(ecosystem: str, old: str, new: str) -> str:
    """major, minor or patch: the first of (epoch, major, minor) that moved decides; any
    later part, or the packaging revision, is a patch."""
    before, after = _parts(ecosystem, old), _parts(ecosystem, new)
    if before is None or after is None:
        return "other"
    for index in range(max(len(before), len(after))):
        a = before[index] if index < len(before) else 0
        b = after[index] if index < len(after) else 0
        if a != b:
            return "major" if index <= 1 else "minor" if index == 2 else "patch"
    return "patch"


Diff = dict[str, dict[str, list[dict[str, str]]]]


def diff(
    old: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
    new: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> Diff:
    """Per ecosystem, each kind of change with its packages in name order; an ecosystem or
    kind without changes is left out. Against nothing (a first version), all is added."""
    result: Diff = {}
    for ecosystem in ECOSYSTEMS:
        before = (old or {}).get(ecosystem) or {}
        after = new.get(ecosystem) or {}
        kinds: dict[str, list[dict[str, str]]] = {}
        for name in sorted(before.keys() | after.keys()):
            was, now = before.get(name), after.get(name)
            if was is None and now is not None:
                kinds.setdefault("added", []).append({"name": name, "to": str(now["version"])})
            elif now is None and was is not None:
                kinds.setdefault("removed", []).append({"name": name, "from": str(was["version"])})
            elif was is not None and now is not None and was["version"] != now["version"]:
                old_v, new_v = str(was["version"]), str(now["version"])
                kind = classify(ecosystem, old_v, new_v)
                kinds.setdefault(kind, []).append({"name": name, "from": old_v, "to": new_v})
        if kinds:
            result[ecosystem] = {kind: kinds[kind] for kind in KINDS if kind in kinds}
    return result


def summary(changes: Diff) -> str:
    """One line: `pip: 1 minor, 2 added; apt: 1 patch`, or `no package changes`."""
    parts = [
        f"{ecosystem}: " + ", ".join(f"{len(items)} {kind}" for kind, items in kinds.items())
        for ecosystem, kinds in changes.items()
    ]
    return "; ".join(parts) or "no package changes"
