"""`envrepo render`, `envrepo plan` and `envrepo build`: from environments to images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from envrepo.cli.options import State, names_argument, pass_state, registry_option
from envrepo.cli.report import emit_json, live_log, note, table
from envrepo.errors import ExitCode


@click.command("render")
@click.argument("name")
@click.option(
    "--context",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write the Dockerfile into this new folder with the locked packages it copies, "
    "ready for `docker build`.",
)
@registry_option
@pass_state
def render_command(state: State, name: str, context: Path | None, registry: str | None) -> int:
    """Print a Dockerfile that makes the same filesystem as `envrepo build`."""
    from envrepo.image import naming, render

    catalog = state.catalog()
    host = naming.registry_host(catalog.repo, registry)
    if context is None:
        click.echo(render.for_environment(catalog, name, host), nl=False)
        return ExitCode.OK
    from envrepo.image.context import write_context

    write_context(catalog, name, host, context)
    click.echo(f"wrote {context}; build it with: docker build {context}")
    return ExitCode.OK


@click.command()
@click.option("--since", metavar="REF", help="Compare with git REF instead of the registry.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "matrix", "waves"]),
    default="table",
    help="waves: one job matrix per wave, as `waveN=<json>` lines for $GITHUB_OUTPUT.",
)
@click.option(
    "--waves",
    "wave_jobs",
    type=click.IntRange(min=1),
    default=4,
    help="With --format waves: how many wave jobs the workflow has.",
)
@registry_option
@pass_state
def plan(state: State, since: str | None, fmt: str, wave_jobs: int, registry: str | None) -> int:
    """What would be built, wave by wave."""
    from envrepo.image import plan as planning

    found = planning.plan_repository(state.catalog(), registry, since)
    planned = found.buildable
    if fmt == "json":
        emit_json([p.as_json() for p in planned])
    elif fmt == "matrix":
        click.echo(json.dumps(planning.matrix(planned), sort_keys=True))
    elif fmt == "waves":
        for line in planning.wave_outputs(planned, wave_jobs):
            click.echo(line)
    else:
        table(
            ("WAVE", "NAME", "HASH", "REASON"),
            [[str(p.wave), p.name, p.hash[:12], p.reason] for p in planned],
        )
    for item in found.blocked:
        note(f"{item.name}: not buildable: {item.why}")
    return ExitCode.PROBLEMS if found.blocked else ExitCode.OK


@click.command()
@names_argument
@click.option("--changed", is_flag=True, help="Build exactly what `envrepo plan` lists.")
@click.option("--push", is_flag=True, help="Push the images and their tags to the registry.")
@registry_option
@pass_state
def build(
    state: State, names: tuple[str, ...], changed: bool, push: bool, registry: str | None
) -> int:
    """Build, test, tag (and push) environments: all, NAMEs, or --changed."""
    from envrepo.image.batch import Request, build_environments

    if names and changed:
        raise click.UsageError("give NAMEs or --changed, not both")
    catalog = state.catalog()
    with live_log() as echo:
        outcome = build_environments(catalog, Request(names, changed, push, registry), echo)
    rows = [[r.name, r.status, r.digest or "-", r.image] for r in outcome.records]
    if rows:
        table(("NAME", "STATUS", "DIGEST", "IMAGE"), rows)
    for error in outcome.failed:
        for line in error.lines:
            click.echo(line, err=True)
    for name in outcome.skipped:
        click.echo(f"{name}: skipped: an environment it is built on failed", err=True)
    note(
        f"envrepo build: {sum(r.status == 'built' for r in outcome.records)} built, "
        f"{sum(r.status == 'cached' for r in outcome.records)} already there, "
        f"{len(outcome.failed)} failed, {len(outcome.skipped)} skipped"
    )
    if outcome.internal:
        return ExitCode.INTERNAL
    return ExitCode.PROBLEMS if outcome.failed or outcome.skipped else ExitCode.OK
