"""Spec hashes: everything that can change the image, and nothing else.

The hash is a contract with every registry that holds an image by it. Changing what goes
into it is a breaking change: bump RENDER_SCHEME, which is itself hashed, so that every
environment rebuilds once instead of silently matching an image built the old way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from envrepo.errors import EnvrepoError
from envrepo.inputs import sources
from envrepo.repo import graph
from envrepo.repo.config import SPEC_FILE
from envrepo.repo.digest import file_sha256, json_sha256
from envrepo.repo.spec import Catalog, Spec, get

RENDER_SCHEME = 3  # 2: per-package layers, roots without .deb files; 3: packages' bytecode
TESTS_DIR = "tests"


@dataclass(frozen=True)
class SpecHash:
    name: str
    value: str
    spec: Mapping[str, Any]
    files: Mapping[str, str]
    parent: str | None
    parent_hash: str | None

    @property
    def short(self) -> str:
        return self.value[:12]

    def inputs(self) -> dict[str, Any]:
        return {
            "scheme": RENDER_SCHEME,
            "spec": self.spec,
            "files": self.files,
            "parent": (
                None if self.parent is None else {"name": self.parent, "hash": self.parent_hash}
            ),
        }


def normalized(spec: Spec) -> dict[str, Any]:
    """The spec as the image sees it: defaults applied, descriptive fields and order dropped."""
    base: dict[str, Any]
    if spec.base.bootstrap is not None:
        boot = spec.base.bootstrap
        base = {
            "bootstrap": {
                "suite": boot.suite,
                "variant": boot.variant,
                "packages": sorted(set(boot.packages)),
                "snapshot": boot.snapshot,
            }
        }
    else:
        base = {spec.base.kind: spec.base.value}
    document = {
        "name": spec.name,
        "base": base,
        "python": spec.python,
        "pip": spec.pip,
        "conda": spec.conda,
        "wheels": spec.wheels,
        "apt": sorted(set(spec.apt)),
        "variables": dict(spec.variables),
        "user_managed": spec.user_managed,
        "interpreter": spec.interpreter,
        "platforms": sorted(set(spec.platforms)),
    }
    return {key: value for key, value in document.items() if value is not None}


def _context_files(spec: Spec) -> Iterable[Path]:
    # A Dockerfile may COPY anything from its folder, so the whole folder is its input, less
    # the spec (hashed normalized) and the smoke tests (they run against the image).
    for path in spec.folder.rglob("*"):
        relative = path.relative_to(spec.folder)
        if path.is_file() and relative.parts[0] != TESTS_DIR and relative.as_posix() != SPEC_FILE:
            yield path


def build_files(spec: Spec) -> dict[str, Path]:
    """The files the build reads, by their path relative to the folder."""
    files: list[Path] = [item.lock for item in sources.lock_inputs(spec) if item.lock.is_file()]
    if spec.wheels is not None and (spec.folder / spec.wheels).is_dir():
        files += (spec.folder / spec.wheels).glob("*.whl")
    if spec.base.kind == "dockerfile":
        files += _context_files(spec)
    return {path.relative_to(spec.folder).as_posix(): path for path in files}


def spec_hash(spec: Spec, parent: SpecHash | None) -> SpecHash:
    files = {rel: file_sha256(path) for rel, path in sorted(build_files(spec).items())}
    unhashed = SpecHash(
        spec.name, "", normalized(spec), files, spec.parent, parent.value if parent else None
    )
    return replace(unhashed, value=json_sha256(unhashed.inputs()))


def hash_tree(catalog: Catalog) -> dict[str, SpecHash | None]:
    """Every environment's hash in one pass, parents first; None for one whose base chain is
    broken (a missing parent, a cycle, or a parent that is broken itself)."""
    hashes: dict[str, SpecHash | None] = {}
    for name in graph.ordered(catalog.specs):
        spec = catalog.specs[name]
        # A parent on a cycle or missing has no hash yet when its child comes.
        parent = hashes.get(spec.parent) if spec.parent is not None else None
        broken = spec.parent is not None and parent is None
        hashes[name] = None if broken else spec_hash(spec, parent)
    return hashes


def hash_environments(catalog: Catalog, names: Iterable[str] | None = None) -> dict[str, SpecHash]:
    """Hashes of `names` (default: all) and of their ancestors, parents first; an error naming
    every broken base chain among them."""
    wanted = list(catalog.specs) if names is None else [get(catalog, name).name for name in names]
    needed = graph.with_ancestors(wanted, catalog.specs)
    shown = {catalog.specs[name].spec_display for name in needed}
    broken = [p for p in graph.problems(catalog) if p.path in shown]
    if broken:
        raise EnvrepoError(*broken)
    hashes: dict[str, SpecHash] = {}
    for name in graph.ordered(catalog.specs, needed):
        spec = catalog.specs[name]
        hashes[name] = spec_hash(spec, hashes[spec.parent] if spec.parent else None)
    return {name: hashes[name] for name in graph.ordered(catalog.specs, wanted)}
