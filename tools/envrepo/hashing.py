"""Spec hashes: everything that can change the image, and nothing else.

The hash is a contract with every registry that holds an image by it. Changing what goes
into it is a breaking change: bump RENDER_SCHEME, which is itself hashed, so that every
environment rebuilds once instead of silently matching an image built the old way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs import sources
from envrepo.repo import graph
from envrepo.repo.config import SPEC_FILE
from envrepo.repo.digest import file_sha256, json_sha256
from envrepo.repo.spec import TESTS_DIR, Catalog, Spec, get, indexes_document

# 2: per-package layers, roots without .deb files; 3: packages' bytecode; 4: an image's
# created time and labels depend only on its hash
RENDER_SCHEME = 4


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
        "wheels": spec.wheels_folder,
        "apt": sorted(set(spec.apt)),
        "variables": dict(spec.variables),
        "user_managed": spec.user_managed,
        "interpreter": spec.interpreter,
        "platforms": sorted(set(spec.platforms)),
        # Where packages come from (the URLs), never how to log in there.
        "indexes": indexes_document(spec) or None,
    }
    return {key: value for key, value in document.items() if value is not None}


def _context_files(spec: Spec) -> Iterable[Path]:
    # A Dockerfile may COPY anything from its folder, so the whole folder is its input, less
    # the spec (hashed normalized) and the smoke tests (they run against the image). Every
    # entry that is not a folder counts, so that a FIFO or a symlink leading out is refused
    # when it is read, not passed over; symlinked folders are not walked into.
    for parent, folders, files in os.walk(spec.folder):
        here = Path(parent)
        if here == spec.folder:
            folders[:] = [name for name in folders if name != TESTS_DIR]
        links = [name for name in folders if (here / name).is_symlink()]
        for name in [*files, *links]:
            if (here / name).relative_to(spec.folder).as_posix() != SPEC_FILE:
                yield here / name


def build_files(spec: Spec) -> dict[str, Path]:
    """The files the build reads, by their path relative to the folder; whatever is there
    under their names (a FIFO, a symlink), so that reading them refuses what is not a regular
    file inside the folder."""
    files = [item.lock for item in sources.lock_inputs(spec) if os.path.lexists(item.lock)]
    if spec.wheels_folder is not None and (spec.folder / spec.wheels_folder).is_dir():
        files += (spec.folder / spec.wheels_folder).glob("*.whl")
    if spec.base.kind == "dockerfile":
        files += _context_files(spec)
    return {path.relative_to(spec.folder).as_posix(): path for path in files}


def spec_hash(spec: Spec, parent: SpecHash | None) -> SpecHash:
    """The hash of `spec` on its parent's; an error naming every file it cannot read."""
    files: dict[str, str] = {}
    problems: list[Problem] = []
    for relative, path in sorted(build_files(spec).items()):
        try:
            files[relative] = file_sha256(path, spec.folder, f"{spec.display}/{relative}")
        except EnvrepoError as error:
            problems += error.problems
    if problems:
        raise EnvrepoError(*problems)
    unhashed = SpecHash(
        spec.name, "", normalized(spec), files, spec.parent, parent.value if parent else None
    )
    return replace(unhashed, value=json_sha256(unhashed.inputs()))


def hash_tree(catalog: Catalog) -> dict[str, SpecHash | None]:
    """Every environment's hash in one pass, parents first; None for one whose base chain is
    broken (a missing parent, a cycle, or a parent that is broken itself) or whose files
    cannot be read."""
    hashes: dict[str, SpecHash | None] = {}
    for name in graph.ordered(catalog.specs):
        spec = catalog.specs[name]
        # A parent on a cycle or missing has no hash yet when its child comes.
        parent = hashes.get(spec.parent) if spec.parent is not None else None
        if spec.parent is not None and parent is None:
            hashes[name] = None
            continue
        try:
            hashes[name] = spec_hash(spec, parent)
        except EnvrepoError:
            hashes[name] = None
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
