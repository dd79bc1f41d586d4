"""What several commands share: the repository they work on, and the options they take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from envrepo.errors import EnvrepoError, Problem

if TYPE_CHECKING:
    # Loaded when a command opens the repository: reading a published index needs none of it.
    from envrepo.repo.config import Repository
    from envrepo.repo.spec import Catalog

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """The repository -C names (or the one found from the current directory), opened once."""

    start: Path | None
    _repo: tuple[Repository, list[Problem]] | None = field(default=None)

    def opened(self) -> tuple[Repository, list[Problem]]:
        """The repository and the problems of its envrepo.yaml."""
        if self._repo is None:
            from envrepo.repo.config import open_repository

            start = self.start if self.start is not None else Path.cwd()
            self._repo = open_repository(start, explicit=self.start is not None)
        return self._repo

    def repository(self) -> Repository:
        """The repository, refusing to go on when its envrepo.yaml is broken."""
        repo, problems = self.opened()
        if problems:
            raise EnvrepoError(*problems)
        return repo

    def catalog(self) -> Catalog:
        from envrepo.repo.spec import load_catalog

        return load_catalog(self.repository())


pass_state = click.make_pass_decorator(State)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(command)


def names_argument(command: F) -> F:
    return click.argument("names", nargs=-1, metavar="[NAME]...")(command)


def registry_option(command: F) -> F:
    return click.option(
        "--registry",
        default=None,
        help="Registry host[:port] (default: $ENVREPO_REGISTRY, else envrepo.yaml's registry).",
    )(command)


def index_location(state: State, given: str | None) -> str:
    """--index, else envrepo.yaml's index.url, else its index.path."""
    if given:
        return given
    config = state.repository().config
    return config.index_url or str(state.repository().root / config.index_path)


index_option = click.option(
    "--index",
    "location",
    default=None,
    metavar="LOC",
    help="A published index: a folder, file:// or http(s):// URL.",
)
