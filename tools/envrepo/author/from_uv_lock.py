"""A uv.lock as an environment's inputs: every package it pins from a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.version import InvalidVersion, Version

from envrepo.author.convert import (
    LEFT_OUT_WHEEL,
    PYTHON_VERSION,
    Inputs,
    Taking,
    read_toml,
    shaped,
    text_or_none,
)
from envrepo.errors import fail
from envrepo.repo.platforms import Target


def _marker_holds(markers: list[str], target: Target) -> bool:
    """Whether one of uv's resolution markers holds for `target`."""
    try:
        return not markers or any(Marker(m).evaluate(target.markers()) for m in markers)
    except InvalidMarker:
        return True


def from_uv_lock(path: Path, python: str, platform: str) -> Inputs:
    """Every package uv.lock pins from a registry, at its exact version: where it pins two
    (for different pythons or platforms), the one for an image of `python` on `platform`."""
    shown = str(path)
    document = read_toml(path, "uv.lock")
    packages = document.get("package")
    if not isinstance(packages, list):
        raise fail(
            shown,
            "",
            "has no [[package]] tables, so it is not a uv.lock; pass the file uv lock wrote",
        )
    taking = Taking()
    requires = str(document.get("requires-python", ""))
    found_python = PYTHON_VERSION.search(requires) if requires.startswith(("==", "~=")) else None
    if found_python:
        taking.python = python = found_python.group(1)
    versions: dict[str, list[str]] = {}
    for index, package in enumerate(packages):
        if not isinstance(package, dict):
            continue
        name, version = str(package.get("name", "")), str(package.get("version", ""))
        source = shaped(shown, f"package[{index}].source", package.get("source") or {}, dict)
        markers = package.get("resolution-markers", [])
        markers = shaped(shown, f"package[{index}].resolution-markers", markers, list)
        where = f"package[{index}] {name}"
        if "editable" in source or "virtual" in source:
            continue
        if "registry" not in source:
            kind = next(iter(source), "unknown")
            taking.warn(
                shown,
                where,
                f"comes from a {kind} source, not a registry; left out: {LEFT_OUT_WHEEL}",
            )
        elif _marker_holds([str(m) for m in markers], Target.of(python, platform)):
            versions.setdefault(name, []).append(version)
    lines = [f"{name}=={max(versions[name], key=_version_key)}" for name in sorted(versions)]
    pip = text_or_none(lines, f"# pinned as {path.name} locked them")
    return taking.inputs(pip=pip, requires_python=requires or None)


def _version_key(version: str) -> Any:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)
