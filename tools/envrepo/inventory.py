"""What `list` and `show` tell about the environments of a repository."""

from __future__ import annotations

from typing import Any

from envrepo.errors import EnvrepoError
from envrepo.hashing import SpecHash, hash_environments
from envrepo.lock import files as lock
from envrepo.repo import graph
from envrepo.repo.spec import Catalog, Spec


def hashes_or_none(catalog: Catalog) -> dict[str, SpecHash | None]:
    """Every environment's hash; None for one whose base chain is broken."""
    result: dict[str, SpecHash | None] = {}
    for name in catalog.specs:
        try:
            result[name] = hash_environments(catalog, [name])[name]
        except EnvrepoError:
            result[name] = None
    return result


def lock_state(spec: Spec, catalog: Catalog) -> dict[str, str]:
    stale = {p.path for p in lock.check(spec, graph.ancestors(spec.name, catalog.specs))}
    state = {}
    for item in lock.lock_inputs(spec):
        if not item.lock.is_file():
            state[item.lock.name] = "missing"
        elif item.lock_display(spec) in stale:
            state[item.lock.name] = "stale"
        else:
            state[item.lock.name] = "fresh"
    return state


def describe(spec: Spec, digest: SpecHash | None, catalog: Catalog) -> dict[str, Any]:
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
        "locks": lock_state(spec, catalog),
        "exclude_newer": spec.exclude_newer,
        "apt": list(spec.apt),
        "variables": dict(spec.variables),
        "user_managed": spec.user_managed,
        "interpreter": spec.interpreter,
        "labels": dict(spec.labels),
        "hash": digest.digest if digest else None,
    }


def row(spec: Spec, digest: SpecHash | None) -> list[str]:
    inputs = ", ".join(f"{k}={v}" for k, v in spec.inputs().items()) or "-"
    return [
        spec.name,
        spec.base.describe(),
        spec.python,
        "yes" if spec.curated else "no",
        digest.short if digest else "-",
        inputs,
    ]


HEADERS = ("NAME", "BASE", "PYTHON", "CURATED", "HASH", "INPUTS")
