"""Adopters' own files turned into an environment's inputs: requirements files, environment.yml,
pyproject.toml and uv.lock, each line taken as its author meant it. A line whose meaning is
clear is converted; one that cannot go into a hermetic image is left out with one warning that
names the file, the line and why; the rest, comments too, is kept.

Reads the given file and the files it includes; a wheel a line names by URL or path is fetched
into the environment's private wheels with its sha256."""

from __future__ import annotations

import hashlib
import re
import tomllib
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from rattler.exceptions import InvalidMatchSpecError
from ruamel.yaml.error import YAMLError

from envrepo.engine import http
from envrepo.errors import Problem, fail
from envrepo.inputs import conda as conda_input
from envrepo.inputs import requirements
from envrepo.repo import yamledit
from envrepo.repo.spec import WHEELS_DIR
from envrepo.repo.yamlio import load_yaml, read_text

PYTHON_VERSION = re.compile(r"(3\.\d+)")
# Azure ML's assets write `pkg=={{latest-pypi-version}}` for "the newest".
_TEMPLATE = re.compile(r"\s*(?:===|==|>=|<=|~=|!=|>|<)?\s*(\{\{[^}]*\}\})")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+")
# `numpy=1.26.4`: conda's spelling of a pin, which pip refuses.
_CONDA_PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*=\s*([0-9][^\s;=<>!~,]*)(.*)$"
)
_LEFT_OUT_WHEEL = "build its wheel and put it in the environment's wheels/ folder"
_MAX_WHEEL = 2 << 30


@dataclass(frozen=True)
class Inputs:
    """What a scaffold source gives: the python version it names, the input files, files to
    put beside them (private wheels, constraints), variables, and what was changed on the way."""

    python: str | None = None
    pip: str | None = None
    conda: str | None = None
    files: Mapping[str, bytes] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()
    # The project's `requires-python`, which the environment's python must satisfy.
    requires_python: str | None = None


Row = tuple[int, str, str]  # (line number, content without comment, comment)


class _Taking:
    """One conversion under way: what it has found besides the lines it returns."""

    def __init__(self) -> None:
        self.warnings: list[Problem] = []
        self.files: dict[str, bytes] = {}
        self.python: str | None = None
        self.seen: set[Path] = set()

    def warn(self, shown: str, where: str, message: str) -> None:
        self.warnings.append(Problem(shown, where, message, "warning"))

    def requirements_file(self, path: Path, shown: str) -> list[str]:
        self.seen.add(path.resolve())
        rows = requirements.logical_lines(read_text(path, shown, "requirements file"))
        return self.rows(rows, path.parent, shown)

    def rows(self, rows: Iterable[Row], folder: Path, shown: str) -> list[str]:
        out: list[str] = []
        for number, content, comment in rows:
            out += self.line(f"line {number}", content, comment, folder, shown)
        return out

    def line(self, where: str, content: str, comment: str, folder: Path, shown: str) -> list[str]:
        if not content:
            return [comment]
        option, value = requirements.split_option(content)
        if option in requirements.INCLUDE:
            return self.include(option, value, folder, shown, where)
        if option in ("-e", "--editable"):
            self.warn(
                shown,
                where,
                f"{content}: an editable install cannot go into an image; left out: "
                + _LEFT_OUT_WHEEL,
            )
            return []
        if option.startswith("-"):
            if option in requirements.HARMLESS:
                return [_joined(content, comment)]
            what = (
                "sets its own package index; left out: envrepo locks from the index uv is "
                "configured with, and a private package goes into wheels/"
                if option in requirements.OWN_INDEX
                else "is not an option envrepo takes; left out"
            )
            self.warn(shown, where, f"{option} {what}")
            return []
        text = content.split(" --hash", 1)[0].strip()
        template = _TEMPLATE.search(text)
        if template:
            text = _TEMPLATE.sub("", text).strip()
        if requirements.URL.search(text):
            return self.direct(text, folder, shown, where)
        conda_pin = _CONDA_PIN.match(text)
        if conda_pin:
            text = f"{conda_pin.group(1)}=={conda_pin.group(2)}{conda_pin.group(3)}"
            self.warn(
                shown,
                where,
                f"{conda_pin.group(1)}={conda_pin.group(2)} is conda's spelling of a pin; "
                f"taken as {conda_pin.group(1)}=={conda_pin.group(2)}",
            )
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            self.warn(
                shown,
                where,
                f"{text!r} is not a valid requirement ({str(error).splitlines()[0]}); left out",
            )
            return []
        if requirements.canonical(requirement.name) == "python":
            self.take_python(requirement, shown, where)
            return []
        if template:
            self.warn(
                shown,
                where,
                f"{requirement.name}: the version is a template ({template.group(1)}); "
                "taken unpinned, so the lock takes the newest",
            )
        return [_joined(text, comment)]

    def include(self, option: str, value: str, folder: Path, shown: str, where: str) -> list[str]:
        target = (folder / value).resolve()
        if target in self.seen:
            self.warn(shown, where, f"{option} {value} includes a file already included; left out")
            return []
        if not target.is_file():
            what = "not a regular file" if target.exists() else "no such file"
            self.warn(shown, where, f"{option} {value}: {what}; left out")
            return []
        lines = self.requirements_file(target, _beside(shown, value))
        if option in ("-r", "--requirement"):
            return [f"# {option} {value} (inlined below)", *lines]
        name = _free_name(self.files, "constraints", ".txt")
        self.files[name] = "".join(f"{line}\n" for line in lines).encode()
        kept = [] if value == name else [f"# {option} {value}"]
        return [*kept, f"-c {name}"]

    def take_python(self, requirement: Requirement, shown: str, where: str) -> None:
        found = PYTHON_VERSION.search(str(requirement.specifier))
        if found is None:
            self.warn(
                shown,
                where,
                f"{requirement}: python is not a pip package; left out, and the environment's "
                "python comes from its base",
            )
            return
        self.python = found.group(1)
        self.warn(
            shown,
            where,
            f"{requirement}: python is not a pip package; left out, and taken as the "
            f"environment's python ({self.python})",
        )

    def direct(self, text: str, folder: Path, shown: str, where: str) -> list[str]:
        """A URL, path or VCS requirement: a wheel is fetched into wheels/, the rest left out."""
        name, at, location = text.partition(" @ ")
        if not at:
            name, location = "", text
        location = location.split(";", 1)[0].strip()
        url, _, fragment = location.partition("#")
        path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
        if _VCS.match(url) or not path.endswith(".whl"):
            what = "a VCS requirement" if _VCS.match(url) else "a source archive or folder"
            self.warn(
                shown,
                where,
                f"{name or location}: {what} is not locked from an index with hashes; "
                f"left out: {_LEFT_OUT_WHEEL}",
            )
            return []
        filename = path.rsplit("/", 1)[-1]
        try:
            parse_wheel_filename(filename)
            data = _fetch(url, folder)
        except (OSError, ValueError, InvalidWheelFilename) as error:
            why = getattr(error, "reason", None) or error
            self.warn(shown, where, f"{location} cannot be fetched ({why}); left out")
            return []
        digest = hashlib.sha256(data).hexdigest()
        wanted = fragment.partition("sha256=")[2]
        if wanted and wanted != digest:
            self.warn(
                shown,
                where,
                f"{filename} has sha256 {digest[:12]}…, the line says {wanted[:12]}…; left out",
            )
            return []
        self.files[f"{WHEELS_DIR}/{filename}"] = data
        self.warn(
            shown,
            where,
            f"{name or filename}: the wheel is taken into {WHEELS_DIR}/{filename} "
            f"(sha256 {digest[:12]}…), and the lock pins it from there",
        )
        return []

    def inputs(self, **found: Any) -> Inputs:
        return Inputs(
            python=self.python,
            files=dict(self.files),
            warnings=tuple(self.warnings),
            **found,
        )


def _joined(text: str, comment: str) -> str:
    return "  ".join(part for part in (text, comment) if part)


def _beside(shown: str, value: str) -> str:
    """How an included file is named: its path as the including file's line gives it."""
    parent = shown.rsplit("/", 1)[0] if "/" in shown else ""
    return f"{parent}/{value}" if parent else value


def _free_name(taken: Mapping[str, bytes], stem: str, suffix: str) -> str:
    number = 1
    while f"{stem}{'' if number == 1 else f'-{number}'}{suffix}" in taken:
        number += 1
    return f"{stem}{'' if number == 1 else f'-{number}'}{suffix}"


def _fetch(url: str, folder: Path) -> bytes:
    """The file a line names: over HTTP(S), or a regular file on this machine (never a FIFO
    or a device, which would hang or never end)."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https"):
        try:
            data = http.get(url, limit=_MAX_WHEEL)
        except http.HTTPError as error:
            raise ValueError(error.reason) from None
    elif scheme in ("", "file"):
        local = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)) if scheme else Path(url)
        local = folder / local
        if not local.is_file():
            raise ValueError("no such regular file" if not local.exists() else "not a regular file")
        with local.open("rb") as source:
            data = source.read(_MAX_WHEEL + 1)
    else:
        raise ValueError(f"{scheme}: is not a scheme envrepo fetches (http, https, file)")
    if len(data) > _MAX_WHEEL:
        raise ValueError("larger than 2 GiB")
    return data


def _text(lines: list[str], header: str) -> str | None:
    if not any(line and not line.startswith("#") for line in lines):
        return None
    return "\n".join([header, *lines]).rstrip("\n") + "\n"


def from_pip(path: Path) -> Inputs:
    """A requirements file with its -r includes inlined (wherever they lead), its -c
    constraints copied beside it, comments, markers and extras kept."""
    taking = _Taking()
    shown = str(path)
    lines = taking.requirements_file(path, shown)
    text = "\n".join(lines).rstrip("\n") + "\n"
    return taking.inputs(pip=text if any(lines) else None)


def _pip_rows(text: str, items: Any) -> list[Row]:
    """The pip: list's entries with their line numbers and comments (the comment lines just
    above an entry too), as a requirements file would hold them."""
    raw = text.splitlines()
    rows: list[Row] = []
    for index, item in enumerate(items):
        number = items.lc.item(index)[0]
        above = number
        while above > 0 and raw[above - 1].strip().startswith("#"):
            above -= 1
        rows += [(line + 1, "", raw[line].strip()) for line in range(above, number)]
        found = re.search(r"\s#.*$", raw[number]) if number < len(raw) else None
        rows.append((number + 1, str(item).strip(), found.group(0).strip() if found else ""))
    return rows


def from_conda(path: Path) -> Inputs:
    """An environment.yml: channels and conda packages (python among them: a conda
    environment brings its own) to conda.yaml, its pip list to requirements.txt, its
    variables to the spec."""
    shown = str(path)
    # The safe loader first: it refuses alias bombs, duplicate keys and the like, one line each.
    load_yaml(path, shown, "conda file")
    text = read_text(path, shown, "conda file")
    try:
        document = yamledit.parse(text)
    except YAMLError as error:
        reason = " ".join(str(error).split())
        raise fail(shown, "", f"is not valid YAML ({reason}); fix it") from None
    if not isinstance(document, dict):
        raise fail(
            shown, "", "is not a mapping; write channels: and dependencies: as in environment.yml"
        )
    taking = _Taking()
    for key in ("name", "prefix"):
        document.pop(key, None)
    raw_variables = _shaped(shown, "variables", document.pop("variables", None) or {}, dict)
    variables = {str(k): str(v) for k, v in raw_variables.items()}
    dependencies = _shaped(shown, "dependencies", document.get("dependencies") or [], list)
    lines = conda_input.dependency_lines(text)
    pip_lines: list[str] = []
    pip_at: dict[str, str] = {}
    conda_names: dict[str, str] = {}
    for index in reversed(range(len(dependencies))):
        item = dependencies[index]
        where = f"line {lines.get(index, 0)}"
        if isinstance(item, dict) and list(item) == ["pip"] and isinstance(item["pip"], list):
            rows = _pip_rows(text, item["pip"])
            pip_lines = taking.rows(rows, path.parent, shown) + pip_lines
            for number, content, _ in rows:
                try:
                    pip_at[requirements.canonical(Requirement(content).name)] = f"line {number}"
                except InvalidRequirement:
                    continue
            del dependencies[index]
            continue
        if not isinstance(item, str):
            taking.warn(shown, where, f"{item!r} is neither a match spec nor a pip: list; left out")
            del dependencies[index]
            continue
        try:
            spec = conda_input.match_spec(item)
        except InvalidMatchSpecError as error:
            taking.warn(
                shown,
                where,
                f"{item!r} is not a conda match spec ({conda_input.reason(error)}); left out",
            )
            del dependencies[index]
            continue
        name = spec.name.normalized if spec.name is not None else ""
        conda_names[requirements.canonical(name)] = where
        if name == "python":
            found = PYTHON_VERSION.search(str(spec.version or ""))
            taking.python = found.group(1) if found else None
    for name, where in sorted(pip_at.items()):
        if name in conda_names and name not in ("pip", "python"):
            taking.warn(
                shown,
                where,
                f"{name} is both a conda package ({conda_names[name]}) and in the pip list; "
                "pip's would overwrite conda's files in the image: keep one",
            )
    pip = _text(pip_lines, f"# from the pip: list of {path.name}")
    taking.warnings.sort(key=lambda p: int(p.field.removeprefix("line ") or 0))
    return taking.inputs(conda=yamledit.dump(document), pip=pip, variables=variables)


def _shaped(shown: str, key: str, value: Any, kind: type) -> Any:
    """`value` when it is a `kind` (a mapping or a list), else one line saying what to fix."""
    if not isinstance(value, kind):
        raise fail(shown, key, f"must be a {'table' if kind is dict else 'list'}; fix it")
    return value


def _toml(path: Path, what: str) -> dict[str, Any]:
    shown = str(path)
    try:
        return tomllib.loads(read_text(path, shown, what))
    except tomllib.TOMLDecodeError as error:
        raise fail(shown, "", f"is not valid TOML ({error}); fix it") from None


def from_pyproject(path: Path, groups: tuple[str, ...]) -> Inputs:
    """PEP 621 `dependencies`, and the optional-dependencies or dependency groups named."""
    shown = str(path)
    document = _toml(path, "pyproject.toml")
    project = _shaped(shown, "project", document.get("project") or {}, dict)
    optional = _shaped(
        shown, "project.optional-dependencies", project.get("optional-dependencies") or {}, dict
    )
    dependencies = _shaped(shown, "project.dependencies", project.get("dependencies") or [], list)
    dependency_groups = _shaped(
        shown, "dependency-groups", document.get("dependency-groups") or {}, dict
    )
    sections: list[tuple[str, list[Any]]] = [("project.dependencies", dependencies)]
    for group in groups:
        if group in optional:
            key = f"project.optional-dependencies.{group}"
            sections.append((key, _shaped(shown, key, optional[group], list)))
        elif group in dependency_groups:
            key = f"dependency-groups.{group}"
            sections.append((key, _shaped(shown, key, dependency_groups[group], list)))
        else:
            known = ", ".join(sorted({*optional, *dependency_groups})) or "none"
            raise fail(
                shown,
                "",
                f"has no optional dependency group {group!r} (known: {known}); pass one of them",
            )
    taking = _Taking()
    own = requirements.canonical(str(project.get("name", "")))

    def expanded(section: str, entries: list[Any], seen: frozenset[str]) -> list[str]:
        """The entries' lines, with `{include-group = G}` (PEP 735) and the project's own
        extras (`name[extra]`) taken in where they stand."""
        lines = []
        for index, entry in enumerate(_shaped(shown, section, entries, list)):
            where = f"{section}[{index}]"
            group = entry.get("include-group") if isinstance(entry, dict) else None
            if isinstance(group, str) and group in dependency_groups and group not in seen:
                included = f"dependency-groups.{group}"
                lines += expanded(included, dependency_groups[group], seen | {group})
                continue
            if not isinstance(entry, str):
                taking.warn(shown, where, f"{entry!r} is not a requirement; left out")
                continue
            name = re.split(r"[\[\s;=<>!~@(]", entry, maxsplit=1)[0]
            if own and requirements.canonical(name) == own:
                extras = re.findall(r"[\w.-]+", entry[len(name) :].split("]")[0])
                for extra in extras:
                    if extra in optional and extra not in seen:
                        section_name = f"project.optional-dependencies.{extra}"
                        lines += expanded(section_name, optional[extra], seen | {extra})
                continue
            lines += [line for line in taking.line(where, entry, "", path.parent, shown) if line]
        return lines

    lines: list[str] = []
    for section, entries in sections:
        lines += [f"# {section}", *expanded(section, entries, frozenset())]
    requires = str(project.get("requires-python", ""))
    found = PYTHON_VERSION.search(requires) if requires.startswith(("==", "~=")) else None
    if found:
        taking.python = found.group(1)
    pip = _text(lines, f"# from {path.name}")
    return taking.inputs(pip=pip, requires_python=requires or None)


def _marker_holds(markers: list[str], python: str) -> bool:
    """Whether one of uv's resolution markers holds for an image of `python` on Linux."""
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": "x86_64",
    }
    try:
        return not markers or any(Marker(m).evaluate(environment) for m in markers)
    except InvalidMarker:
        return True


def from_uv_lock(path: Path, python: str) -> Inputs:
    """Every package uv.lock pins from a registry, at its exact version: where it pins two
    (for different pythons or platforms), the one for a Linux image of `python`."""
    shown = str(path)
    document = _toml(path, "uv.lock")
    packages = document.get("package")
    if not isinstance(packages, list):
        raise fail(
            shown,
            "",
            "has no [[package]] tables, so it is not a uv.lock; pass the file uv lock wrote",
        )
    taking = _Taking()
    requires = str(document.get("requires-python", ""))
    found_python = PYTHON_VERSION.search(requires) if requires.startswith(("==", "~=")) else None
    if found_python:
        taking.python = python = found_python.group(1)
    versions: dict[str, list[str]] = {}
    for index, package in enumerate(packages):
        if not isinstance(package, dict):
            continue
        name, version = str(package.get("name", "")), str(package.get("version", ""))
        source = _shaped(shown, f"package[{index}].source", package.get("source") or {}, dict)
        markers = package.get("resolution-markers", [])
        markers = _shaped(shown, f"package[{index}].resolution-markers", markers, list)
        where = f"package[{index}] {name}"
        if "editable" in source or "virtual" in source:
            continue
        if "registry" not in source:
            kind = next(iter(source), "unknown")
            taking.warn(
                shown,
                where,
                f"comes from a {kind} source, not a registry; left out: {_LEFT_OUT_WHEEL}",
            )
        elif _marker_holds([str(m) for m in markers], python):
            versions.setdefault(name, []).append(version)
    lines = [f"{name}=={max(versions[name], key=_version_key)}" for name in sorted(versions)]
    pip = _text(lines, f"# pinned as {path.name} locked them")
    return taking.inputs(pip=pip, requires_python=requires or None)


def _version_key(version: str) -> Any:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)
