"""The base graph: which environment is built on which, derived from the specs alone.

Every environment has at most one parent, so the graph is a forest unless a spec makes a
cycle; validation refuses cycles and missing parents, and everything else walks it here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envrepo.errors import Problem
from envrepo.repo.spec import Catalog, Spec


def parents(specs: Mapping[str, Spec]) -> dict[str, str | None]:
    return {name: spec.parent for name, spec in specs.items()}


def chain(name: str, parent_of: Mapping[str, str | None]) -> list[str]:
    """`name` and its ancestors, nearest first, stopping at a missing parent or a repeat."""
    seen = [name]
    current = parent_of.get(name)
    while current is not None and current in parent_of and current not in seen:
        seen.append(current)
        current = parent_of[current]
    if current is not None and current in seen:
        seen.append(current)
    return seen


def cycle_of(name: str, parent_of: Mapping[str, str | None]) -> list[str] | None:
    """The cycle `name` sits on, starting and ending with `name`; None when it sits on none."""
    walk = chain(name, parent_of)
    return walk if len(walk) > 1 and walk[-1] == name else None


def waves(specs: Mapping[str, Spec], names: Iterable[str] | None = None) -> list[list[str]]:
    """`names` (default: all) grouped so that every parent is in an earlier wave."""
    parent_of = parents(specs)
    wanted = set(specs if names is None else names)
    depth = {name: len(chain(name, parent_of)) - 1 for name in wanted}
    grouped: dict[int, list[str]] = {}
    for name in sorted(wanted):
        grouped.setdefault(depth[name], []).append(name)
    return [grouped[level] for level in sorted(grouped)]


def ordered(specs: Mapping[str, Spec], names: Iterable[str] | None = None) -> list[str]:
    return [name for wave in waves(specs, names) for name in wave]


def with_ancestors(names: Iterable[str], specs: Mapping[str, Spec]) -> set[str]:
    parent_of = parents(specs)
    return {ancestor for name in names for ancestor in chain(name, parent_of) if ancestor in specs}


def descendants(names: Iterable[str], specs: Mapping[str, Spec]) -> set[str]:
    parent_of = parents(specs)
    roots = set(names)
    return {name for name in specs if roots & set(chain(name, parent_of)[1:])}


def problems(catalog: Catalog) -> list[Problem]:
    found = []
    parent_of = parents(catalog.specs)
    for name, spec in catalog.specs.items():
        parent = spec.parent
        if parent is None:
            continue
        if parent not in catalog.specs:
            if parent in catalog.folders:
                message = f"{parent!r} has problems of its own (listed with it); fix them first"
            else:
                message = (
                    f"{parent!r} is not an environment of this repository; "
                    f"create {catalog.repo.config.environments}/{parent} or fix the name"
                )
            found.append(Problem(spec.spec_display, "base.environment", message))
            continue
        cycle = cycle_of(name, parent_of)
        if cycle is not None:
            found.append(
                Problem(
                    spec.spec_display,
                    "base.environment",
                    (f"{' → '.join(cycle)} is a cycle; base one of them on an image or bootstrap"),
                )
            )
    return found


def ancestors(
    name: str, specs: Mapping[str, Spec], parent_of: Mapping[str, str | None] | None = None
) -> list[Spec]:
    """The environments `name` is built on, nearest first (a cycle is walked once).

    `parent_of` saves rebuilding the parent map when asking for many environments.
    """
    walk = chain(name, parents(specs) if parent_of is None else parent_of)[1:]
    return [specs[n] for n in dict.fromkeys(walk) if n in specs and n != name]
