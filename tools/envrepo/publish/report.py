"""What a pull request would publish: its build records against the index's latest versions."""

from __future__ import annotations

from collections.abc import Sequence

from envrepo.image import record as build_records
from envrepo.index.diff import Diff, summary
from envrepo.index.diff import diff as diff_packages
from envrepo.index.paths import (
    environment_path,
    version_path,
)
from envrepo.index.read import Index
from envrepo.publish.release import chosen_records
from envrepo.repo import graph
from envrepo.repo.spec import Catalog


def against_published(catalog: Catalog, index: Index) -> list[tuple[str, int | None, Diff]]:
    """Each build record of the tree's own hashes, against its environment's latest version
    in the index: (name, that version or None, the package diff). For a pull request's
    summary: what merging it would change, before anything is published."""
    chosen, _ = chosen_records(
        catalog, build_records.read_all(catalog.repo.root / ".envrepo" / "builds")
    )
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
