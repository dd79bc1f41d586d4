"""What `list` and `show` tell about the environments of a repository."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envrepo.errors import EnvrepoError
from envrepo.hashing import SpecHash, hash_environments, hash_tree
from envrepo.inputs import sources
from envrepo.lock import files as lock
from envrepo.repo import graph
from envrepo.repo.spec import Catalog, Spec, get


def lock_state(
    spec: Spec, catalog: Catalog, parent_of: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    ancestors = graph.ancestors(spec.name, catalog.specs, parent_of)
    try:
        stale = {p.path for p in lock.stale_locks(spec, ancestors)}
    except EnvrepoError:
        return {item.lock.name: "unreadable" for item in sources.lock_inputs(spec)}
    state = {}
    for item in sources.lock_inputs(spec):
        if not item.lock.is_file():
            state[item.lock.name] = "missing"
        elif item.lock_display(spec) in stale:
            state[item.lock.name] = "stale"
        else:
            state[item.lock.name] = "fresh"
    return state


def describe(
    spec: Spec,
    spec_hash: SpecHash | None,
    catalog: Catalog,
    parent_of: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": spec.base.kind, "value": spec.base.value}
    if spec.base.bootstrap is not None:
        boot = spec.base.bootstrap
        base["bootstrap"] = {
            "suite": boot.suite,
            "variant": boot.variant,
            "packages": list(boot.packages),
            "snapshot": boot.snapshot,
        }
    return {
        "name": spec.name,
        "folder": spec.display,
        "description": spec.description,
        "curated": spec.curated,
        "base": base,
        "python": spec.python,
        "platforms": list(spec.platforms),
        "inputs": spec.inputs(),
        "locks": lock_state(spec, catalog, parent_of),
        "exclude_newer": spec.exclude_newer,
        "apt": list(spec.apt),
        "variables": dict(spec.variables),
        "user_managed": spec.user_managed,
        "interpreter": spec.interpreter,
        "labels": dict(spec.labels),
        "hash": spec_hash.value if spec_hash else None,
    }


def row(spec: Spec, spec_hash: SpecHash | None) -> list[str]:
    inputs = ", ".join(f"{k}={v}" for k, v in spec.inputs().items()) or "-"
    return [
        spec.name,
        spec.base.describe(),
        spec.python,
        "yes" if spec.curated else "no",
        spec_hash.short if spec_hash else "-",
        inputs,
    ]


HEADERS = ("NAME", "BASE", "PYTHON", "CURATED", "HASH", "INPUTS")


@dataclass(frozen=True)
class Listing:
    """Every environment that loads, in name order: a table row each, and (when asked) what
    --json shows of each; and the folders that do not load."""

    rows: list[list[str]]
    described: list[dict[str, Any]]
    broken: list[str]


def listing(catalog: Catalog, detailed: bool) -> Listing:
    hashes = hash_tree(catalog)
    parent_of = graph.parents(catalog.specs)
    specs = [catalog.specs[name] for name in sorted(catalog.specs)]
    described = [describe(s, hashes[s.name], catalog, parent_of) for s in specs] if detailed else []
    return Listing(
        rows=[row(spec, hashes[spec.name]) for spec in specs],
        described=described,
        broken=sorted(set(catalog.folders) - set(catalog.specs)),
    )


@dataclass(frozen=True)
class Shown:
    """One environment as --json shows it, and as lines of `field: value` for people."""

    described: dict[str, Any]
    fields: list[tuple[str, str]]


def show(catalog: Catalog, name: str) -> Shown:
    """What `show` tells of one environment of the working tree."""
    spec = get(catalog, name)
    info = describe(spec, hash_environments(catalog, [name])[name], catalog)
    fields = [
        ("name", spec.name),
        ("folder", spec.display),
        ("description", spec.description or "-"),
        ("curated", "yes" if spec.curated else "no"),
        ("base", spec.base.describe()),
        ("python", spec.python),
        ("platforms", ", ".join(spec.platforms)),
        ("inputs", ", ".join(f"{k}={v}" for k, v in spec.inputs().items()) or "-"),
        ("locks", ", ".join(f"{k} ({v})" for k, v in info["locks"].items()) or "-"),
        ("apt", ", ".join(spec.apt) or "-"),
        ("variables", ", ".join(f"{k}={v}" for k, v in spec.variables.items()) or "-"),
        ("user_managed", "yes" if spec.user_managed else "no"),
        ("interpreter", spec.interpreter),
        ("labels", ", ".join(f"{k}={v}" for k, v in spec.labels.items()) or "-"),
        ("hash", info["hash"]),
    ]
    return Shown(info, fields)
