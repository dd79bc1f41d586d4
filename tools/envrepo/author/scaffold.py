"""New environment folders: empty, or from a project's own files (convert) or an environment on
disk (prefixes); the base chosen to fit, and the folder written whole or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from envrepo.author import convert, from_conda, from_pyproject, from_uv_lock, prefixes
from envrepo.author.convert import Inputs
from envrepo.errors import EnvrepoError, Problem, fail
from envrepo.repo import schema
from envrepo.repo.config import SPEC_FILE
from envrepo.repo.files import create_folder
from envrepo.repo.schema_copy import schema_comment
from envrepo.repo.schemas import ENVIRONMENT
from envrepo.repo.spec import Catalog, load_catalog
from envrepo.validate import DEBIAN_PYTHON, NAME, environment_problems


def render_spec(document: dict[str, Any], comment: str | None) -> str:
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return f"{comment}\n{text}" if comment else text


def conda_base(catalog: Catalog, base: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """A base a conda environment fits on, and why it was chosen: a conda environment is its
    own prefix at /opt/env with its own python, so it goes on the nearest environment of
    `base`'s chain that has no virtual environment there (or on that chain's root image)."""
    name = base.get("environment")
    if name is None or name not in catalog.specs:
        return base, None
    spec = catalog.specs[name]
    while not spec.user_managed:
        if spec.parent is None or spec.parent not in catalog.specs:
            if spec.base.kind != "image":
                raise fail(
                    name,
                    "",
                    (
                        "has a virtual environment at /opt/env, where a conda environment goes, "
                        "and no base without one; pass --base-image or --base-environment"
                    ),
                )
            chosen = {"image": spec.base.value}
            return chosen, f"base image {spec.base.value}, the image under {name}"
        spec = catalog.specs[spec.parent]
    if spec.name == name:
        return base, None
    return {"environment": spec.name}, (
        f"base {spec.name}: a conda environment brings its own python at /opt/env, and "
        f"{name} has a virtual environment there; {spec.name} is the nearest base under it "
        "without one"
    )


def _requires_python(inputs: Inputs, python: str, shown: str) -> list[Problem]:
    """A warning when the project's `requires-python` does not take the environment's python."""
    try:
        takes = inputs.requires_python is None or SpecifierSet(inputs.requires_python).contains(
            python
        )
    except InvalidSpecifier:
        takes = True
    if takes:
        return []
    message = (
        f"the project requires python {inputs.requires_python}, and the environment's python "
        f"is {python}: its code would not run there; pass --python, or a base with a python "
        "it takes"
    )
    return [Problem(shown, "python", message, "warning")]


def scaffold(
    catalog: Catalog,
    name: str,
    inputs: Inputs,
    base: dict[str, Any] | None,
    python: str | None,
    description: str,
    curated: bool,
) -> tuple[Path, str | None, tuple[Problem, ...]]:
    """Create environments/NAME; refuses anything that would not validate or that exists.
    Gives the folder, why it chose the base when it did (for a conda environment), and what
    it decided against the source."""
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
    why = None
    warnings: list[Problem] = []
    if inputs.conda is not None and base is None:
        chosen_base, why = conda_base(catalog, dict(chosen_base))
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
        if inputs.conda is not None and not parent.user_managed:
            raise fail(
                shown,
                "base",
                (
                    f"a conda environment is its own prefix at /opt/env, and {parent_name} has "
                    "a virtual environment there; pass a base without one, or no base and "
                    "scaffold chooses"
                ),
            )
        own_python = inputs.conda is not None
        if version is not None and version != parent.python and not own_python:
            if python is not None:
                raise fail(
                    shown,
                    "",
                    (
                        f"python {version} differs from {parent.python} of the base environment "
                        f"{parent_name}; pass --base-image or another base, or --python "
                        f"{parent.python}"
                    ),
                )
            # Only the file asked for it: the base decides, and the file is taken whole.
            warnings.append(
                Problem(
                    shown,
                    "python",
                    (
                        f"the file asks for python {version}, and the base environment "
                        f"{parent_name} has {parent.python}: the environment gets "
                        f"{parent.python}; to keep {version}, scaffold again with --base-image "
                        f"of a python {version} image"
                    ),
                    "warning",
                )
            )
        version = version if own_python and version else parent.python
    document: dict[str, Any] = {"name": name}
    if description:
        document["description"] = description
    if curated:
        document["curated"] = True
    document["base"] = chosen_base
    document["python"] = version or repo.config.defaults.python
    if "bootstrap" in chosen_base:
        # A root from the Debian archive: its python is the suite's own, used as it is.
        document["user_managed"] = True
        document["interpreter"] = "/usr/bin/python3"
    warnings += _requires_python(inputs, document["python"], shown)
    files: dict[str, str | bytes] = dict(inputs.files)
    if inputs.pip is not None:
        document["pip"] = "requirements.txt"
        files["requirements.txt"] = inputs.pip
    if inputs.conda is not None:
        document["conda"] = "conda.yaml"
        files["conda.yaml"] = inputs.conda
    if inputs.variables:
        document["variables"] = dict(inputs.variables)
    problems = schema.violations(document, ENVIRONMENT, f"{shown}/{SPEC_FILE}")
    if problems:
        raise EnvrepoError(*problems)
    files[SPEC_FILE] = render_spec(document, schema_comment(repo, folder))
    repo.environments_dir.mkdir(parents=True, exist_ok=True)
    create_folder(folder, files)
    return folder, why, tuple(warnings)


@dataclass(frozen=True)
class Request:
    """What `envrepo scaffold` is asked: at most one source file or prefix, at most one base."""

    name: str
    conda_file: Path | None = None
    pip_file: Path | None = None
    prefix: Path | None = None
    pyproject: Path | None = None
    groups: tuple[str, ...] = ()
    uv_lock: Path | None = None
    base_environment: str | None = None
    base_image: str | None = None
    python: str | None = None
    description: str = ""
    curated: bool = False
    # A root of one's own: the Debian suite to build it from (debootstrap).
    bootstrap: str | None = None


def bootstrap_base(suite: str) -> tuple[dict[str, Any], str]:
    """The base of a root environment made from the Debian archive, and its python."""
    if suite not in DEBIAN_PYTHON:
        raise fail(
            suite,
            "",
            f"is not a Debian suite envrepo knows the python of; use one of {', '.join(DEBIAN_PYTHON)}",
        )
    packages = ["python3", "python3-venv", "ca-certificates"]
    return {"bootstrap": {"suite": suite, "variant": "minbase", "packages": packages}}, (
        DEBIAN_PYTHON[suite]
    )


@dataclass(frozen=True)
class Scaffolded:
    """The new folder, what the source could not give as it was, why the base was chosen,
    and what the new environment still lacks (a lock, for one)."""

    folder: Path
    warnings: tuple[Problem, ...]
    base_chosen: str | None
    problems: list[Problem]
    needs_lock: bool


def scaffold_environment(catalog: Catalog, request: Request) -> Scaffolded:
    if request.conda_file is not None:
        inputs = from_conda.from_conda(request.conda_file)
    elif request.pip_file is not None:
        inputs = convert.from_pip(request.pip_file)
    elif request.pyproject is not None:
        inputs = from_pyproject.from_pyproject(request.pyproject, request.groups)
    elif request.uv_lock is not None:
        defaults = catalog.repo.config.defaults
        inputs = from_uv_lock.from_uv_lock(
            request.uv_lock, request.python or defaults.python, defaults.platforms[0]
        )
    elif request.prefix is not None:
        inputs = prefixes.from_env(request.prefix)
    else:
        inputs = Inputs()
    python = request.python
    base: dict[str, Any] | None = (
        {"environment": request.base_environment}
        if request.base_environment
        else {"image": request.base_image}
        if request.base_image
        else None
    )
    if request.bootstrap is not None:
        base, suite_python = bootstrap_base(request.bootstrap)
        if python is not None and python != suite_python:
            raise fail(
                request.name,
                "python",
                f"{python} differs from {suite_python}, the python3 of Debian "
                f"{request.bootstrap}; leave --python out for a root",
            )
        python = suite_python
    folder, why, decided = scaffold(
        catalog,
        request.name,
        inputs,
        base,
        python,
        request.description,
        request.curated,
    )
    grown = load_catalog(catalog.repo)
    problems = environment_problems(grown.specs[request.name], grown)
    needs_lock = inputs.pip is not None or inputs.conda is not None or bool(inputs.files)
    return Scaffolded(folder, inputs.warnings + decided, why, problems, needs_lock)
