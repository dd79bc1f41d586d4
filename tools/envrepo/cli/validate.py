"""`envrepo validate`: the schema and the repository's rules, every problem in one run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from envrepo.cli.options import State, pass_state
from envrepo.cli.report import count, note
from envrepo.errors import ExitCode, Severity

if TYPE_CHECKING:
    from envrepo.deploy.spec import ModelCheck
    from envrepo.repo.config import Repository


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[NAME|PATH]...")
@click.option("--strict", is_flag=True, help="Treat warnings as problems (exit 1).")
@click.option(
    "-v", "--verbose", is_flag=True, help="Say how many were checked, even when all pass."
)
@pass_state
def validate(state: State, paths: tuple[Path, ...], strict: bool, verbose: bool) -> int:
    """Check envrepo.yaml and environments (all, or those named or that PATHS are in)."""
    from envrepo import __version__
    from envrepo.deploy import spec as deployments
    from envrepo.repo import schema_copy
    from envrepo.validate import Report, validate_repository

    repo, problems = state.opened()
    endpoints, others = deployments.split(paths, repo)
    report = (
        Report(sorted(problems), 0)
        if endpoints and not others
        else validate_repository(repo, problems, others)
    )
    if not problems:
        for path in schema_copy.refresh(repo.root):
            note(f"{repo.display(path)}: updated to envrepo {__version__}'s schema; commit it")
    found, files = (
        deployments.check_files(repo, endpoints, lambda: _model_check(repo))
        if endpoints or not others
        else ([], 0)
    )
    shown = [*report.problems, *found]
    for problem in shown:
        click.echo(problem.line())
    errors = sum(p.is_error for p in shown)
    warnings = len(shown) - errors
    if errors or warnings or verbose:
        checked = count(report.checked, "environment") + (
            f" and {count(files, 'deployment file')}" if files else ""
        )
        note(
            f"envrepo validate: {count(errors, 'error')}, {count(warnings, 'warning')} in {checked}"
        )
    return ExitCode.PROBLEMS if errors or (strict and warnings) else ExitCode.OK


def _model_check(repo: Repository) -> ModelCheck | None:
    """Whether a deployment's model is in the repository's registry: None without one. A
    registry that does not answer is a warning, so that validate works offline."""
    from envrepo.engine.registry import connect
    from envrepo.errors import EnvrepoError
    from envrepo.image import naming
    from envrepo.models import artifact, store

    host = naming.registry_host(repo, None)
    if not host:
        return None
    registry = connect(host, repo.config.registry)
    known: dict[str, list[int] | str] = {}

    def check(reference: str) -> tuple[Severity, str] | None:
        wanted = artifact.parse(reference)
        if wanted.name not in known:
            try:
                known[wanted.name] = store.versions(registry, wanted.name)
            except EnvrepoError as error:
                known[wanted.name] = error.lines[0]
        found = known[wanted.name]
        if isinstance(found, str):
            return "warning", f"{reference} could not be checked: {found}"
        if wanted.version not in found:
            have = f"its versions are {', '.join(map(str, found))}" if found else "it has none"
            return "error", (
                f"{reference} is no model in the registry {host} ({have}); register it with "
                "envrepo model register, or name a version it has"
            )
        return None

    return check
