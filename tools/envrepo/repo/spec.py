"""Loading environment folders into frozen Spec values."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo import schema, schemas
from envrepo.repo.config import SPEC_FILE, Repository
from envrepo.repo.paths import confinement
from envrepo.repo.platforms import Target
from envrepo.repo.yamlio import load_yaml

BaseKind = Literal["environment", "image", "dockerfile", "bootstrap", "published"]
BASE_KINDS: tuple[BaseKind, ...] = ("environment", "image", "dockerfile", "bootstrap", "published")
# Where an environment's packages live in its image: a virtual environment, or a conda prefix.
ENV_PREFIX = "/opt/env"
VENV_INTERPRETER = f"{ENV_PREFIX}/bin/python"
TESTS_DIR = "tests"  # an environment's smoke tests, run inside its image
WHEELS_DIR = "wheels"  # an environment's private wheels, by convention when `wheels` is unset
DEFAULT_TEST_TIMEOUT = 300  # seconds a smoke test may run before it is stopped, failed
SYSTEM_INTERPRETER = "/usr/bin/python3"


@dataclass(frozen=True)
class Bootstrap:
    suite: str
    variant: str = "minbase"
    packages: tuple[str, ...] = ()
    snapshot: str | None = None


@dataclass(frozen=True)
class Base:
    kind: BaseKind
    value: str
    bootstrap: Bootstrap | None = None
    # A published base: the index its NAME@VERSION (`value`) is read from.
    index: str | None = None

    def describe(self) -> str:
        if self.bootstrap is not None:
            return f"bootstrap:{self.bootstrap.suite}/{self.bootstrap.variant}"
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class PackageIndex:
    """A package index the spec names: uv's named index, explicit when it serves only the
    packages pinned to it."""

    name: str
    url: str
    explicit: bool = False
    packages: tuple[str, ...] = ()


# The index name envrepo gives the private wheels while it resolves.
PRIVATE_INDEX = "private-wheels"


@dataclass(frozen=True)
class Spec:
    name: str
    folder: Path
    display: str
    base: Base
    python: str
    description: str = ""
    curated: bool = False
    pip: str | None = None
    conda: str | None = None
    wheels: str | None = None
    apt: tuple[str, ...] = ()
    variables: Mapping[str, str] = field(default_factory=dict)
    user_managed: bool = False
    interpreter: str = VENV_INTERPRETER
    platforms: tuple[str, ...] = ("linux/amd64",)
    labels: Mapping[str, str] = field(default_factory=dict)
    exclude_newer: str | None = None
    indexes: tuple[PackageIndex, ...] = ()
    test_timeout: int = DEFAULT_TEST_TIMEOUT
    # Modules the build's import check leaves alone (with their submodules).
    skip_imports: tuple[str, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec_display(self) -> str:
        return f"{self.display}/{SPEC_FILE}"

    @property
    def target(self) -> Target:
        """What the environment's packages are chosen for: its python on its first platform."""
        return Target.of(self.python, self.platforms[0])

    @property
    def parent(self) -> str | None:
        return self.base.value if self.base.kind == "environment" else None

    @property
    def wheels_folder(self) -> str | None:
        """The private wheels' folder: as the spec names it, else wheels/ when there is one."""
        if self.wheels is not None:
            return self.wheels
        return WHEELS_DIR if os.path.lexists(self.folder / WHEELS_DIR) else None

    def inputs(self) -> dict[str, str]:
        """The spec fields that name files or folders, by field name."""
        named = {"pip": self.pip, "conda": self.conda, "wheels": self.wheels_folder}
        if self.base.kind == "dockerfile":
            named["base.dockerfile"] = self.base.value
        return {key: value for key, value in named.items() if value is not None}


def indexes_document(spec: Spec) -> list[dict[str, object]]:
    """The spec's indexes as hashes and locks see them: where packages come from."""
    return [
        {"name": i.name, "url": i.url, "explicit": i.explicit, "packages": sorted(i.packages)}
        for i in spec.indexes
    ]


def python_agrees(found: str, wanted: str) -> bool:
    """Whether an interpreter of version `found` (3.11.2) is the `python` a spec asks for
    (3.11, or 3.11.2)."""
    return found == wanted or found.startswith(wanted + ".")


def site_packages(spec: Spec) -> str:
    major_minor = ".".join(spec.python.split(".")[:2])
    return f"{ENV_PREFIX}/lib/python{major_minor}/site-packages"


def needs_venv(spec: Spec, parent: Spec | None) -> bool:
    """A virtual environment is made once, by the first environment of a chain that has one."""
    if spec.user_managed or spec.conda is not None or spec.base.kind == "published":
        # A published base is an environment whose venv its own repository made.
        return False
    return parent is None or parent.user_managed


@dataclass(frozen=True)
class Catalog:
    """Every environment folder of a repository: the specs that loaded, and what did not."""

    repo: Repository
    specs: Mapping[str, Spec]
    problems: tuple[Problem, ...]
    folders: tuple[str, ...]


def _base(document: Mapping[str, Any], repo: Repository, display: str) -> Base:
    raw = document.get("base", repo.config.defaults.base)
    if raw is None:
        raise EnvrepoError(
            Problem(
                display,
                "base",
                "is missing and envrepo.yaml sets no defaults.base; "
                "set one of environment, image, dockerfile, bootstrap, published",
            )
        )
    kind, value = next(iter(raw.items()))
    if kind == "bootstrap":
        boot = Bootstrap(
            suite=value["suite"],
            variant=value.get("variant", "minbase"),
            packages=tuple(value.get("packages", ())),
            snapshot=value.get("snapshot"),
        )
        return Base("bootstrap", boot.suite, boot)
    if kind == "published":
        return Base("published", value["environment"], index=value["index"])
    return Base(kind, value)


def _indexes(document: Mapping[str, Any], display: str) -> tuple[PackageIndex, ...]:
    """The spec's package indexes; an error for a name given twice or a package pinned to
    two of them."""
    found: list[PackageIndex] = []
    pinned: dict[str, str] = {}
    for number, raw in enumerate(document.get("indexes", ())):
        where = f"indexes[{number}]"
        index = PackageIndex(
            raw["name"],
            raw["url"],
            bool(raw.get("explicit", False)),
            tuple(raw.get("packages", ())),
        )
        if index.name == PRIVATE_INDEX or any(i.name == index.name for i in found):
            raise EnvrepoError(
                Problem(display, f"{where}.name", f"{index.name!r} is taken; give another name")
            )
        for package in index.packages:
            key = package.lower().replace("_", "-").replace(".", "-")
            if key in pinned:
                raise EnvrepoError(
                    Problem(
                        display,
                        f"{where}.packages",
                        f"{package} is already pinned to index {pinned[key]}; pin it to one",
                    )
                )
            pinned[key] = index.name
        if index.explicit and not index.packages:
            raise EnvrepoError(
                Problem(
                    display,
                    f"{where}.packages",
                    "an explicit index serves only the packages pinned to it, and none are; "
                    "name them, or drop explicit",
                )
            )
        found.append(index)
    return tuple(found)


def cutoff(spec: Spec) -> datetime.datetime | None:
    """The spec's exclude_newer as a moment (UTC when it names no zone)."""
    if not spec.exclude_newer:
        return None
    try:
        moment = datetime.datetime.fromisoformat(spec.exclude_newer.replace("Z", "+00:00"))
    except ValueError as error:
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "exclude_newer",
                (f"{spec.exclude_newer!r} is not a real date ({error}); fix it"),
            )
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def build_spec(document: Mapping[str, Any], folder: Path, repo: Repository) -> Spec:
    """A Spec from a document that passed the schema, with the repository's defaults."""
    display = repo.display(folder)
    defaults = repo.config.defaults
    user_managed = bool(document.get("user_managed", False))
    default_interpreter = SYSTEM_INTERPRETER if user_managed else VENV_INTERPRETER
    return Spec(
        name=document["name"],
        folder=folder,
        display=display,
        base=_base(document, repo, f"{display}/{SPEC_FILE}"),
        python=document.get("python", defaults.python),
        description=document.get("description", ""),
        curated=bool(document.get("curated", False)),
        pip=document.get("pip"),
        conda=document.get("conda"),
        wheels=document.get("wheels"),
        apt=tuple(document.get("apt", ())),
        variables=dict(document.get("variables", {})),
        user_managed=user_managed,
        interpreter=document.get("interpreter", default_interpreter),
        platforms=tuple(document.get("platforms", defaults.platforms)),
        labels=dict(document.get("labels", {})),
        exclude_newer=document.get("exclude_newer"),
        indexes=_indexes(document, f"{display}/{SPEC_FILE}"),
        test_timeout=document.get("test_timeout", DEFAULT_TEST_TIMEOUT),
        skip_imports=tuple(document.get("skip_imports", ())),
        document=document,
    )


def load_spec(folder: Path, repo: Repository) -> Spec:
    """The spec in `folder`; an EnvrepoError carrying every load or schema problem."""
    display = f"{repo.display(folder)}/{SPEC_FILE}"
    path = folder / SPEC_FILE
    leaks = confinement(path, folder) if path.is_symlink() else None
    if leaks is not None:
        raise EnvrepoError(Problem(display, "", leaks))
    document = load_yaml(path, display, "spec")
    problems = schema.violations(document, schemas.ENVIRONMENT, display)
    if problems:
        raise EnvrepoError(*problems)
    return build_spec(document, folder, repo)


def environment_folders(repo: Repository) -> tuple[list[Path], list[Problem]]:
    """Every environment folder, resolved, so that every later check inside a folder can
    compare paths as they are; and a problem for each symlinked one that leads out of the
    repository."""
    root = repo.environments_dir
    if not root.is_dir():
        return [], []
    root = root.resolve()
    folders: list[Path] = []
    problems: list[Problem] = []
    top = repo.root.resolve()
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        if entry.is_symlink():
            real = entry.resolve()
            if not real.is_relative_to(top) or real.name != entry.name:
                problems.append(
                    Problem(
                        repo.display(entry),
                        "",
                        "is a symlink to a folder outside the repository or of another name; "
                        "move the environment's folder here",
                    )
                )
                continue
            entry = real
        folders.append(entry)
    return folders, problems


def load_catalog(repo: Repository) -> Catalog:
    specs: dict[str, Spec] = {}
    folders, problems = environment_folders(repo)
    for folder in folders:
        if not (folder / SPEC_FILE).exists():
            problems.append(
                Problem(
                    repo.display(folder),
                    "",
                    f"has no {SPEC_FILE}; add one (envrepo scaffold {folder.name}) "
                    "or remove the folder",
                )
            )
            continue
        try:
            specs[folder.name] = load_spec(folder, repo)
        except EnvrepoError as error:
            problems.extend(error.problems)
    return Catalog(repo, specs, tuple(problems), tuple(f.name for f in folders))


def get(catalog: Catalog, name: str) -> Spec:
    """One environment by name, or a clear error naming what went wrong with it."""
    if name in catalog.specs:
        return catalog.specs[name]
    display = catalog.repo.display(catalog.repo.folder(name))
    own = [p for p in catalog.problems if p.path == display or p.path.startswith(display + "/")]
    if own:
        raise EnvrepoError(*own)
    known = ", ".join(catalog.specs) or "none"
    raise EnvrepoError(
        Problem(display, "", f"no such environment (known: {known}); check the name")
    )
