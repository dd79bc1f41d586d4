"""`envrepo validate`: the schema and the repository's rules, every problem in one run."""

from __future__ import annotations

from pathlib import Path

import click

from envrepo.cli.options import State, pass_state
from envrepo.cli.report import count, note
from envrepo.errors import ExitCode


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
    from envrepo.repo import schema_copy
    from envrepo.validate import validate_repository

    repo, problems = state.opened()
    report = validate_repository(repo, problems, paths)
    if not problems:
        for path in schema_copy.refresh(repo.root):
            note(f"{repo.display(path)}: updated to envrepo {__version__}'s schema; commit it")
    for problem in report.problems:
        click.echo(problem.line())
    errors = sum(p.is_error for p in report.problems)
    warnings = len(report.problems) - errors
    if errors or warnings or verbose:
        note(
            f"envrepo validate: {count(errors, 'error')}, {count(warnings, 'warning')} "
            f"in {count(report.checked, 'environment')}"
        )
    return ExitCode.PROBLEMS if errors or (strict and warnings) else ExitCode.OK
