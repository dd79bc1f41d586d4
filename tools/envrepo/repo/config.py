"""Finding the environment repository and reading its envrepo.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo import schema, schemas
from envrepo.repo.yamlio import parse_yaml, read_text

CONFIG_FILE = "envrepo.yaml"
SPEC_FILE = "environment.yaml"


@dataclass(frozen=True)
class Defaults:
    python: str = "3.11"
    platforms: tuple[str, ...] = ("linux/amd64",)
    base: dict[str, Any] | None = None
    channels: tuple[str, ...] = ("conda-forge",)


@dataclass(frozen=True)
class Config:
    registry: str | None = None
    reserved_prefix: str | None = None
    environments: str = "environments"
    defaults: Defaults = field(default_factory=Defaults)
    index_path: str = "index"
    index_url: str | None = None


@dataclass(frozen=True)
class Repository:
    root: Path
    config: Config

    @property
    def environments_dir(self) -> Path:
        return self.root / self.config.environments

    def display(self, path: Path) -> str:
        """A path as envrepo prints it: relative to the repository root, with / separators."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def folder(self, name: str) -> Path:
        return self.environments_dir / name


def find_root(start: Path) -> Path:
    """The nearest folder holding envrepo.yaml, else the git work tree's root."""
    start = start.resolve()
    candidates = [start, *start.parents]
    for folder in candidates:
        if (folder / CONFIG_FILE).is_file():
            return folder
    for folder in candidates:
        if (folder / ".git").exists():
            return folder
    raise EnvrepoError(
        Problem(
            str(start),
            "",
            f"not inside an environment repository (no {CONFIG_FILE} and no git work tree "
            "above it); run envrepo inside one or pass -C DIR",
        )
    )


def config_problems(root: Path) -> tuple[Config, list[Problem]]:
    """The repository's config, and what is wrong with its file (defaults when it has none)."""
    path = root / CONFIG_FILE
    if not path.is_file():
        return Config(), []
    display = CONFIG_FILE
    try:
        # An envrepo.yaml with nothing in it yet means "all defaults", not a mistake.
        document = parse_yaml(read_text(path, display), display) or {}
    except EnvrepoError as error:
        return Config(), list(error.problems)
    problems = schema.violations(document, schemas.CONFIG, display)
    if problems or not isinstance(document, dict):
        return Config(), problems
    defaults = document.get("defaults", {})
    index = document.get("index", {})
    base = Defaults()
    config = Config(
        registry=document.get("registry"),
        reserved_prefix=document.get("reserved_prefix"),
        environments=document.get("environments", "environments"),
        defaults=Defaults(
            python=defaults.get("python", base.python),
            platforms=tuple(defaults.get("platforms", base.platforms)),
            base=defaults.get("base"),
            channels=tuple(defaults.get("channels", base.channels)),
        ),
        index_path=index.get("path", "index"),
        index_url=index.get("url"),
    )
    return config, []


def open_repository(start: Path, *, explicit: bool = False) -> tuple[Repository, list[Problem]]:
    """The repository at or above `start` (exactly `start` when the user named it)."""
    if explicit and not start.is_dir():
        raise EnvrepoError(Problem(str(start), "", "is not a directory; pass an existing -C DIR"))
    root = start.resolve() if explicit else find_root(start)
    config, problems = config_problems(root)
    return Repository(root, config), problems
