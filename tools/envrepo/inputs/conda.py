"""Reading conda inputs (environment.yml format): channels, conda packages, nested pip list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.yamlio import load_yaml

_NAME = re.compile(r"^([A-Za-z0-9_.\-]+(?:::[A-Za-z0-9_.\-]+)?)")
_KNOWN = ("name", "channels", "dependencies", "variables", "prefix")

UNPINNED_WHY = (
    "it is not pinned to one version, so each re-lock may pick another build (Azure ML "
    "silently keeps a stale cached image for such packages); pin it as name==version"
)


@dataclass(frozen=True)
class CondaInput:
    channels: tuple[str, ...]
    packages: tuple[str, ...]
    pip: tuple[str, ...]


def package_name(spec: str) -> str:
    """The package a conda match spec names: `numpy>=1.26` and `conda-forge::numpy` → numpy."""
    match = _NAME.match(spec.strip())
    name = match.group(1) if match else spec.strip()
    return name.rsplit("::", 1)[-1].lower()


def is_exact(spec: str) -> bool:
    rest = spec.strip()[len(package_name(spec)) :].strip() if "::" not in spec else ""
    return rest.startswith("==") or (rest.count("=") >= 2 and not rest.startswith(("<", ">")))


def read_input(path: Path, display: str) -> tuple[CondaInput, list[Problem]]:
    """The conda input in `path`, and every problem with its shape (as errors) or pins."""
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
    pip: list[str] = []
    if not isinstance(dependencies, list):
        problems.append(Problem(display, "dependencies", "must be a list; fix it"))
        dependencies = []
    for index, item in enumerate(dependencies):
        field = f"dependencies[{index}]"
        if isinstance(item, str) and item.strip():
            packages.append(item.strip())
            if not is_exact(item):
                problems.append(
                    Problem(display, field, f"{package_name(item)}: {UNPINNED_WHY}", "warning")
                )
        elif isinstance(item, dict) and list(item) == ["pip"] and isinstance(item["pip"], list):
            pip.extend(str(p) for p in item["pip"])
        else:
            problems.append(
                Problem(display, field, ("must be a match spec string or a pip: list; fix it"))
            )
    return CondaInput(tuple(channels), tuple(packages), tuple(pip)), problems


_SPEC = re.compile(r"^[A-Za-z0-9_.\-]+(::[A-Za-z0-9_.\-]+)?\s*([=<>!~]=?\s*[\w.*+!]+\s*,?\s*)*$")


def check_spec(spec: str) -> None:
    """Refuse a string that is not a conda match spec this tool can edit."""
    if not _SPEC.match(spec.strip()):
        raise EnvrepoError(
            Problem(
                spec, "", ("is not a conda match spec; write name, name==version or name>=version")
            )
        )
