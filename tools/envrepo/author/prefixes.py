"""Environments on disk, a virtual environment or a conda prefix, read into inputs pinned to
exactly what is installed in them. Reads the prefix's metadata only; runs nothing in it."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from envrepo.author.convert import PYTHON_VERSION, Inputs
from envrepo.errors import Problem, fail
from envrepo.inputs import requirements

# What `pip freeze` leaves out too: the installer's own tools, which every venv has.
_VENV_TOOLS = {"pip", "setuptools", "wheel", "distribute"}


def _venv_python(prefix: Path) -> str | None:
    config = (prefix / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            match = PYTHON_VERSION.search(value)
            if match:
                return match.group(1)
    return None


def _installed(
    site_packages: list[Path], skip: set[str], shown: str
) -> tuple[list[str], list[Problem]]:
    """`name==version` of every distribution installed from an index, and warnings on the rest."""
    pins: dict[str, str] = {}
    notes = []
    for dist in metadata.distributions(path=[str(p) for p in site_packages]):
        name = dist.metadata["Name"]
        if not name or requirements.canonical(name) in skip:
            continue
        direct = dist.read_text("direct_url.json")
        if direct and "archive_info" not in json.loads(direct):
            notes.append(
                Problem(
                    shown,
                    "",
                    f"{name} was installed from a path or VCS; left out: build a wheel of it "
                    "into wheels/",
                    "warning",
                )
            )
            continue
        pins[requirements.canonical(name)] = f"{name}=={dist.version}"
    return [pins[key] for key in sorted(pins)], notes


def _site_packages(prefix: Path) -> list[Path]:
    return sorted(prefix.glob("lib/python3*/site-packages"))


def from_env(prefix: Path) -> Inputs:
    """An environment on disk, pinned to exactly what is installed in it."""
    shown = str(prefix)
    if (prefix / "conda-meta").is_dir():
        return _from_conda_prefix(prefix)
    if (prefix / "pyvenv.cfg").is_file():
        pins, notes = _installed(_site_packages(prefix), _VENV_TOOLS, shown)
        header = f"# pinned to what {prefix.name} had installed"
        return Inputs(
            python=_venv_python(prefix),
            pip="\n".join([header, *pins]) + "\n",
            warnings=tuple(notes),
        )
    raise fail(
        shown,
        "",
        (
            "is neither a conda environment (no conda-meta/) nor a virtual environment "
            "(no pyvenv.cfg); pass the prefix of one"
        ),
    )


def _channel_name(url: str) -> str:
    trimmed = re.sub(r"/(noarch|linux-64|linux-aarch64|osx-64|osx-arm64|win-64)/?$", "", url)
    if "://" in trimmed:
        host_path = trimmed.split("://", 1)[1].split("/", 1)
        return host_path[1] if len(host_path) == 2 and host_path[1] else trimmed
    return trimmed


def _from_conda_prefix(prefix: Path) -> Inputs:
    python = None
    channels: list[str] = []
    packages: list[str] = []
    conda_names: set[str] = set()
    for record_path in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            name, version = record["name"], record["version"]
        except (ValueError, KeyError, TypeError):
            raise fail(
                str(record_path),
                "",
                (
                    "is not a conda package record (name and version); "
                    "check that the prefix is a conda environment"
                ),
            ) from None
        conda_names.add(requirements.canonical(name))
        if name == "python":
            # Kept among the packages: a conda environment brings its own python.
            python = ".".join(str(version).split(".")[:2])
        channel = _channel_name(str(record.get("channel", "")))
        if channel and channel not in channels:
            channels.append(channel)
        packages.append(f"{name}=={version}")
    document: dict[str, Any] = {"channels": channels or ["conda-forge"], "dependencies": packages}
    pins, notes = _installed(_site_packages(prefix), conda_names | _VENV_TOOLS, str(prefix))
    pip = "\n".join([f"# pip packages of {prefix.name}", *pins]) + "\n" if pins else None
    conda = f"# pinned to what {prefix.name} had installed\n" + yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False
    )
    return Inputs(python=python, conda=conda, pip=pip, warnings=tuple(notes))
