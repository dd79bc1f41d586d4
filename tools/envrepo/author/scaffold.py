"""New environment folders: empty, or from a conda file, a requirements file or a prefix."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from envrepo.errors import EnvrepoError, Problem, fail
from envrepo.inputs import conda as conda_input
from envrepo.inputs import requirements
from envrepo.repo import schema, yamledit
from envrepo.repo.config import SPEC_FILE, Repository
from envrepo.repo.files import create_folder
from envrepo.repo.schemas import ENVIRONMENT
from envrepo.repo.spec import Catalog, load_catalog
from envrepo.repo.yamlio import read_text
from envrepo.validate import NAME, environment_problems

_PYTHON_VERSION = re.compile(r"(3\.\d+)")
# What `pip freeze` leaves out too: the installer's own tools, which every venv has.
_VENV_TOOLS = {"pip", "setuptools", "wheel", "distribute"}


@dataclass(frozen=True)
class Inputs:
    """What a scaffold source gives: the python version it names and the input files."""

    python: str | None = None
    pip: str | None = None
    conda: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def from_conda(path: Path) -> Inputs:
    """An environment.yml: channels and conda packages to conda.yaml, its pip list apart."""
    shown = str(path)
    parsed, problems = conda_input.read_input(path, shown)
    errors = [p for p in problems if p.is_error and p.field != "channels"]
    if errors:
        raise EnvrepoError(*errors)
    document = yamledit.parse(read_text(path, shown, "conda file"))
    python = None
    dependencies = document.get("dependencies") or []
    for item in list(dependencies):
        if isinstance(item, str) and conda_input.package_name(item) == "python":
            match = _PYTHON_VERSION.search(item)
            python = match.group(1) if match else None
            dependencies.remove(item)
        elif isinstance(item, dict) and "pip" in item:
            dependencies.remove(item)
    for key in ("name", "prefix"):
        document.pop(key, None)
    pip_text = None
    if parsed.pip:
        lines = [f"# from the pip: list of {path.name}"]
        for entry in parsed.pip:
            _, found = requirements.check_entry(entry)
            bad = [message for severity, message in found if severity == "error"]
            if bad:
                raise fail(shown, "", f"pip: {entry}: {bad[0]}")
            lines.append(entry)
        pip_text = "\n".join(lines) + "\n"
    return Inputs(python=python, conda=yamledit.dump(document), pip=pip_text)


def from_pip(path: Path) -> Inputs:
    """A requirements file with its -r includes inlined, comments, markers and extras kept."""
    folder = path.resolve().parent
    parsed = requirements.parse(path, folder, Path(path.parent))
    errors = [p for p in parsed.problems if p.is_error]
    if errors:
        raise EnvrepoError(*errors)
    out: list[str] = []
    for line in parsed.lines:
        option, _ = requirements.split_option(line.text)
        if option in requirements.INCLUDE:
            out.append(
                f"# {line.text} (inlined below)"
                if option in ("-r", "--requirement")
                else f"# {line.text}"
            )
            continue
        text = "  ".join(part for part in (line.text, line.comment) if part)
        out.append(text)
    constraints = [
        (line.display, line.text)
        for line in parsed.lines
        if requirements.split_option(line.text)[0] in ("-c", "--constraint")
    ]
    if constraints:
        raise fail(
            constraints[0][0],
            "",
            (
                f"{constraints[0][1]}: constraint files are not taken over; "
                "move their pins into the requirements"
            ),
        )
    return Inputs(pip="\n".join(out).rstrip("\n") + "\n")


def _venv_python(prefix: Path) -> str | None:
    config = (prefix / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            match = _PYTHON_VERSION.search(value)
            if match:
                return match.group(1)
    return None


def _installed(site_packages: list[Path], skip: set[str]) -> tuple[list[str], list[str]]:
    """`name==version` of every distribution installed from an index, and notes on the rest."""
    pins: dict[str, str] = {}
    notes = []
    for dist in metadata.distributions(path=[str(p) for p in site_packages]):
        name = dist.metadata["Name"]
        if not name or requirements.canonical(name) in skip:
            continue
        direct = dist.read_text("direct_url.json")
        if direct and "archive_info" not in json.loads(direct):
            notes.append(
                f"{name} was installed from a path or VCS and is left out; "
                "build a wheel of it into wheels/"
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
        pins, notes = _installed(_site_packages(prefix), _VENV_TOOLS)
        header = f"# pinned to what {prefix.name} had installed"
        return Inputs(
            python=_venv_python(prefix),
            pip="\n".join([header, *pins]) + "\n",
            notes=tuple(notes),
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
            python = ".".join(str(version).split(".")[:2])
            continue
        channel = _channel_name(str(record.get("channel", "")))
        if channel and channel not in channels:
            channels.append(channel)
        packages.append(f"{name}=={version}")
    document: dict[str, Any] = {"channels": channels or ["conda-forge"], "dependencies": packages}
    pins, notes = _installed(_site_packages(prefix), conda_names | _VENV_TOOLS)
    pip = "\n".join([f"# pip packages of {prefix.name}", *pins]) + "\n" if pins else None
    conda = f"# pinned to what {prefix.name} had installed\n" + yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False
    )
    return Inputs(python=python, conda=conda, pip=pip, notes=tuple(notes))


def schema_comment(repo: Repository, folder: Path) -> str | None:
    """The editor's schema hint, when the schema ships inside this repository."""
    shipped = repo.root / "tools" / "envrepo" / "repo" / "schemas" / ENVIRONMENT
    if not shipped.is_file():
        return None
    depth = len(folder.relative_to(repo.root).parts)
    return (
        f"# yaml-language-server: $schema={'../' * depth}tools/envrepo/repo/schemas/{ENVIRONMENT}"
    )


def render_spec(document: dict[str, Any], comment: str | None) -> str:
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return f"{comment}\n{text}" if comment else text


def scaffold(
    catalog: Catalog,
    name: str,
    inputs: Inputs,
    base: dict[str, str] | None,
    python: str | None,
    description: str,
    curated: bool,
) -> Path:
    """Create environments/NAME; refuses anything that would not validate or that exists."""
    repo = catalog.repo
    folder = repo.folder(name)
    shown = repo.display(folder)
    if not NAME.match(name) or len(name) > 64:
        raise fail(
            name,
            "",
            (
                "is not a valid environment name; use lowercase letters, digits and . _ - "
                "between them, as an image name requires"
            ),
        )
    if folder.exists() or folder.is_symlink():
        raise fail(shown, "", "already exists; pick another name or edit that environment")
    prefix = repo.config.reserved_prefix
    if prefix and name.startswith(prefix) != curated:
        raise fail(
            name,
            "",
            (
                f"the prefix {prefix!r} is reserved for curated environments, which must carry it; "
                + ("pass --curated" if name.startswith(prefix) else f"name it {prefix}{name}")
            ),
        )
    chosen_base = base or repo.config.defaults.base
    if chosen_base is None:
        raise fail(
            shown,
            "",
            (
                "no base given and envrepo.yaml sets no defaults.base; "
                "pass --base-environment NAME or --base-image REF"
            ),
        )
    version = python or inputs.python
    parent_name = chosen_base.get("environment")
    if parent_name is not None:
        parent = catalog.specs.get(parent_name)
        if parent is None:
            raise fail(
                parent_name,
                "",
                (
                    "is not a valid environment of this repository to base on; "
                    "pass --base-environment with one that `envrepo list` shows"
                ),
            )
        if version is not None and version != parent.python:
            raise fail(
                shown,
                "",
                (
                    f"python {version} differs from {parent.python} of the base environment "
                    f"{parent_name}; pass --base-image or another base, or --python {parent.python}"
                ),
            )
        version = parent.python
    document: dict[str, Any] = {"name": name}
    if description:
        document["description"] = description
    if curated:
        document["curated"] = True
    document["base"] = chosen_base
    document["python"] = version or repo.config.defaults.python
    files: dict[str, str | bytes] = {}
    if inputs.pip is not None:
        document["pip"] = "requirements.txt"
        files["requirements.txt"] = inputs.pip
    if inputs.conda is not None:
        document["conda"] = "conda.yaml"
        files["conda.yaml"] = inputs.conda
    problems = schema.violations(document, ENVIRONMENT, f"{shown}/{SPEC_FILE}")
    if problems:
        raise EnvrepoError(*problems)
    files[SPEC_FILE] = render_spec(document, schema_comment(repo, folder))
    repo.environments_dir.mkdir(parents=True, exist_ok=True)
    create_folder(folder, files)
    return folder


@dataclass(frozen=True)
class Request:
    """What `envrepo scaffold` is asked: at most one source file or prefix, at most one base."""

    name: str
    conda_file: Path | None = None
    pip_file: Path | None = None
    prefix: Path | None = None
    base_environment: str | None = None
    base_image: str | None = None
    python: str | None = None
    description: str = ""
    curated: bool = False


@dataclass(frozen=True)
class Scaffolded:
    """The new folder, what the source could not give as it was, and what the new
    environment still lacks (a lock, for one)."""

    folder: Path
    notes: tuple[str, ...]
    problems: list[Problem]
    needs_lock: bool


def scaffold_environment(catalog: Catalog, request: Request) -> Scaffolded:
    if request.conda_file is not None:
        inputs = from_conda(request.conda_file)
    elif request.pip_file is not None:
        inputs = from_pip(request.pip_file)
    elif request.prefix is not None:
        inputs = from_env(request.prefix)
    else:
        inputs = Inputs()
    base = (
        {"environment": request.base_environment}
        if request.base_environment
        else {"image": request.base_image}
        if request.base_image
        else None
    )
    folder = scaffold(
        catalog,
        request.name,
        inputs,
        base,
        request.python,
        request.description,
        request.curated,
    )
    grown = load_catalog(catalog.repo)
    problems = environment_problems(grown.specs[request.name], grown)
    needs_lock = inputs.pip is not None or inputs.conda is not None
    return Scaffolded(folder, inputs.notes, problems, needs_lock)
