"""Reading conda inputs (environment.yml format): channels, conda packages, nested pip list.

Match specs are read by rattler's own parser, leniently, as conda reads them: `cudf==24.8.*`,
`jaxlib>=0.4.31=cuda12*`, `pkg=1.2=h123_0` and `channel::pkg` are all conda's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rattler import MatchSpec
from rattler.exceptions import InvalidMatchSpecError
from ruamel.yaml.error import YAMLError

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo import yamledit
from envrepo.repo.yamlio import load_yaml

_KNOWN = ("name", "channels", "dependencies", "variables", "prefix")


@dataclass(frozen=True)
class CondaInput:
    channels: tuple[str, ...]
    packages: tuple[str, ...]
    pip: tuple[str, ...]
    # The conda packages (by name) that are not pinned to one version.
    unpinned: tuple[str, ...] = ()


def match_spec(spec: str) -> MatchSpec:
    """`spec` as conda reads it; InvalidMatchSpecError names what is wrong."""
    return MatchSpec(spec.strip())


def package_name(spec: str) -> str:
    """The package a conda match spec names: `numpy>=1.26` and `conda-forge::numpy` → numpy."""
    try:
        name = match_spec(spec).name
    except InvalidMatchSpecError:
        return spec.strip().split("::")[-1].split(" ")[0].lower()
    return name.normalized if name is not None else spec.strip().lower()


def is_exact(spec: str) -> bool:
    """One version: `==1.2`, `1.2 h123_0` or `=1.2=h123_0`; `=1.2` is conda's `1.2.*`."""
    try:
        version = match_spec(spec).version
    except InvalidMatchSpecError:
        return False
    text = str(version) if version is not None else ""
    return text.startswith("==") and "*" not in text and "," not in text and "|" not in text


def reason(error: Exception) -> str:
    return " ".join(str(error).split("Caused by:")[0].split())


def dependency_lines(text: str) -> dict[int, int]:
    """The line (from 1) of each item of `dependencies`, where the YAML says it."""
    try:
        document: Any = yamledit.parse(text)
        items = document["dependencies"]
        return {index: items.lc.item(index)[0] + 1 for index in range(len(items))}
    except (YAMLError, KeyError, TypeError, AttributeError):
        return {}


def read_input(path: Path, display: str) -> tuple[CondaInput, list[Problem]]:
    """The conda input in `path`, and every problem with its shape."""
    document = load_yaml(path, display, "conda input")
    if not isinstance(document, dict):
        raise EnvrepoError(
            Problem(
                display,
                "",
                ("is not a mapping; write channels: and dependencies: as in environment.yml"),
            )
        )
    problems: list[Problem] = []
    for key in document:
        if key not in _KNOWN:
            problems.append(
                Problem(
                    display, str(key), (f"unknown field; remove it (known: {', '.join(_KNOWN)})")
                )
            )
    channels = document.get("channels") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        problems.append(Problem(display, "channels", "must be a list of channel names; fix it"))
        channels = []
    elif not channels:
        problems.append(
            Problem(
                display,
                "channels",
                ("is empty; name the channels the packages come from, such as [conda-forge]"),
            )
        )
    dependencies = document.get("dependencies") or []
    packages: list[str] = []
    unpinned: list[str] = []
    pip: list[str] = []
    if not isinstance(dependencies, list):
        problems.append(Problem(display, "dependencies", "must be a list; fix it"))
        dependencies = []
    lines = dependency_lines(path.read_text(encoding="utf-8", errors="replace"))
    for index, item in enumerate(dependencies):
        where = f"line {lines[index]}" if index in lines else f"dependencies[{index}]"
        if isinstance(item, str) and item.strip():
            try:
                match_spec(item)
            except InvalidMatchSpecError as error:
                problems.append(
                    Problem(
                        display,
                        where,
                        f"{item.strip()!r} is not a conda match spec ({reason(error)}); fix it",
                    )
                )
                continue
            packages.append(item.strip())
            if not is_exact(item):
                unpinned.append(package_name(item))
        elif isinstance(item, dict) and list(item) == ["pip"] and isinstance(item["pip"], list):
            pip.extend(str(p) for p in item["pip"])
        else:
            problems.append(
                Problem(display, where, f"{item!r} is neither a match spec nor a pip: list; fix it")
            )
    found = CondaInput(tuple(channels), tuple(packages), tuple(pip), tuple(unpinned))
    return found, problems


def check_spec(spec: str) -> None:
    """Refuse a string that conda would not read as a match spec."""
    try:
        match_spec(spec)
    except InvalidMatchSpecError as error:
        raise EnvrepoError(
            Problem(spec, "", f"is not a conda match spec ({reason(error)}); fix it")
        ) from None
