"""`envrepo lock`: lock files for environments' targets, or a check that they are fresh."""

from __future__ import annotations

import click

from envrepo.cli.options import State, names_argument, pass_state
from envrepo.cli.report import count, note, progress
from envrepo.errors import ExitCode


@click.command()
@names_argument
@click.option("--all", "every", is_flag=True, help="Lock every environment.")
@click.option(
    "--changed",
    is_flag=True,
    help="Only environments whose lock is missing or stale (the default).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Only report missing or stale locks (exit 1); reads files, no network.",
)
@click.option(
    "--fail-if-changed",
    is_flag=True,
    help="Exit 1 when a lock was written (for hooks: the commit then shows the new locks).",
)
@click.option(
    "-U",
    "--upgrade",
    "upgrade_all",
    is_flag=True,
    help="Re-resolve every package, not keeping the current pins.",
)
@click.option(
    "-P",
    "--upgrade-package",
    "upgrade",
    multiple=True,
    metavar="PKG",
    help="Re-resolve only PKG (repeatable); every other pin stays.",
)
@click.option(
    "--build-wheels",
    is_flag=True,
    help="Build what is published only as source into the environment's wheels/ (on this "
    "machine, for the image's target) and lock it from there.",
)
@pass_state
def lock(
    state: State,
    names: tuple[str, ...],
    every: bool,
    changed: bool,
    check: bool,
    fail_if_changed: bool,
    upgrade_all: bool,
    upgrade: tuple[str, ...],
    build_wheels: bool,
) -> int:
    """Write lock files for environments (NAMEs, --all, or --changed).

    NAMEs and --all look base images and published bases up again, and resolve pip input
    that changed (a current pip lock is kept as it is unless told to upgrade); --changed (the
    default) touches only missing or stale locks and needs no network otherwise.
    """
    from envrepo.lock import runner

    if names and (every or changed):
        raise click.UsageError("give NAMEs, or --all, or --changed, not several")
    catalog = state.catalog()
    if check:
        problems = runner.check_all(catalog, names)
        for problem in problems:
            click.echo(problem.line())
        return ExitCode.PROBLEMS if problems else ExitCode.OK
    from envrepo.image.naming import registry_host
    from envrepo.lock.request import Request, WheelBuilder

    only_stale = not (names or every or upgrade_all or upgrade or build_wheels)
    builder: WheelBuilder | None = None
    if build_wheels:
        # Docker and the registry client are loaded only when wheels are to be built.
        from envrepo.image.sdist_build import build_wheels as builder

    request = Request(upgrade_all, upgrade, registry_host(catalog.repo, None), builder)
    outcome = runner.lock_all(catalog, names, only_stale, request, progress)
    for path in outcome.changed:
        click.echo(f"wrote {catalog.repo.display(path)}")
    for error in outcome.failed:
        for line in error.lines:
            click.echo(line, err=True)
    for name in outcome.skipped:
        click.echo(runner.refusal(name).line(), err=True)
    note(
        f"envrepo lock: {count(len(outcome.changed), 'lock')} changed, "
        f"{len(outcome.unchanged)} unchanged, {count(len(outcome.failed), 'environment')} "
        f"failed, {len(outcome.skipped)} skipped"
    )
    if outcome.failed:
        return ExitCode.USAGE
    return ExitCode.PROBLEMS if fail_if_changed and outcome.changed else ExitCode.OK
