"""Adopters' own files turned into an environment's inputs (requirements files here;
environment.yml, pyproject.toml and uv.lock in the modules named after them), each line taken
as its author meant it. A line whose meaning is
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

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from envrepo.engine import http
from envrepo.errors import Problem, fail
from envrepo.inputs import requirements
from envrepo.repo.spec import WHEELS_DIR
from envrepo.repo.yamlio import read_text

PYTHON_VERSION = re.compile(r"(3\.\d+)")
# Azure ML's assets write `pkg=={{latest-pypi-version}}` for "the newest".
_TEMPLATE = re.compile(r"\s*(?:===|==|>=|<=|~=|!=|>|<)?\s*(\{\{[^}]*\}\})")
_VCS = re.compile(r"^(git|hg|svn|bzr)\+")
# `numpy=1.26.4`: conda's spelling of a pin, which pip refuses.
_CONDA_PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*=\s*([0-9][^\s;=<>!~,]*)(.*)$"
)
LEFT_OUT_WHEEL = "build its wheel and put it in the environment's wheels/ folder"
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


class Taking:
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
                + LEFT_OUT_WHEEL,
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
                f"left out: {LEFT_OUT_WHEEL}",
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


def text_or_none(lines: list[str], header: str) -> str | None:
    if not any(line and not line.startswith("#") for line in lines):
        return None
    return "\n".join([header, *lines]).rstrip("\n") + "\n"


def from_pip(path: Path) -> Inputs:
    """A requirements file with its -r includes inlined (wherever they lead), its -c
    constraints copied beside it, comments, markers and extras kept."""
    taking = Taking()
    shown = str(path)
    lines = taking.requirements_file(path, shown)
    text = "\n".join(lines).rstrip("\n") + "\n"
    return taking.inputs(pip=text if any(lines) else None)


def shaped(shown: str, key: str, value: Any, kind: type) -> Any:
    """`value` when it is a `kind` (a mapping or a list), else one line saying what to fix."""
    if not isinstance(value, kind):
        raise fail(shown, key, f"must be a {'table' if kind is dict else 'list'}; fix it")
    return value


def read_toml(path: Path, what: str) -> dict[str, Any]:
    shown = str(path)
    try:
        return tomllib.loads(read_text(path, shown, what))
    except tomllib.TOMLDecodeError as error:
        raise fail(shown, "", f"is not valid TOML ({error}); fix it") from None
