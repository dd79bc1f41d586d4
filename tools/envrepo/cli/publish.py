"""`envrepo publish`, `envrepo deprecate` and `envrepo diff`: the published index."""

from __future__ import annotations

from pathlib import Path

import click

from envrepo.cli.options import (
    State,
    index_location,
    index_option,
    json_option,
    pass_state,
    registry_option,
)
from envrepo.cli.report import changes_lines, emit_json, note
from envrepo.errors import EnvrepoError, ExitCode
from envrepo.index.reference import parse


@click.command()
@click.option(
    "--records",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of build records (default: .envrepo/builds).",
)
@click.option(
    "--to",
    "to",
    type=click.Path(path_type=Path),
    default=None,
    help="Publish into this folder (default: envrepo.yaml's index.path).",
)
@click.option("--to-branch", "branch", default=None, help="Publish into this git branch.")
@click.option("--push", "remote", default=None, help="With --to-branch: push it to this remote.")
@registry_option
@json_option
@pass_state
def publish(
    state: State,
    records: Path | None,
    to: Path | None,
    branch: str | None,
    remote: str | None,
    registry: str | None,
    as_json: bool,
) -> int:
    """Merge build records into the index: versions, SBOMs, package diffs, HTML pages."""
    from envrepo.publish import publisher

    if to is not None and branch is not None:
        raise EnvrepoError("--to and --to-branch: give one of them")
    if remote is not None and branch is None:
        raise EnvrepoError("--push: pushes a branch; give --to-branch BRANCH as well")
    request = publisher.Request(records, to, branch, remote, registry)
    published = publisher.publish(state.catalog(), request, note)
    if published.skipped:
        note(f"records left out: {', '.join(published.skipped)}")
    if published.where is None:
        shown = records or ".envrepo/builds"
        note(
            f"nothing to publish: no build records in {shown} and no deprecations; index unchanged"
        )
    if as_json:
        emit_json(
            {
                "where": published.where,
                "versions": [
                    {"name": name, "version": number, "new": new}
                    for name, number, new in published.versions
                ],
            }
        )
    elif published.where is not None:
        click.echo(f"published to {published.where}")
        if branch is None:
            click.echo(f"open {Path(published.where).resolve() / 'index.html'}")
    return ExitCode.OK


@click.command()
@click.argument("reference", metavar="NAME[@VERSION]")
@click.option("--reason", required=True, help="Why it should no longer be used.")
@click.option("--replacement", default=None, metavar="NAME@VERSION", help="What to use instead.")
@pass_state
def deprecate(state: State, reference: str, reason: str, replacement: str | None) -> int:
    """Record that an environment, or one version of it, should no longer be used."""
    from envrepo.publish import deprecations

    catalog = state.catalog()
    path = deprecations.record(catalog.repo, reference, reason, replacement, set(catalog.specs))
    click.echo(f"recorded in {catalog.repo.display(path)}; commit it, and publish carries it")
    return ExitCode.OK


@click.command()
@click.argument("first", metavar="NAME@A", required=False)
@click.argument("second", metavar="[NAME@B]", required=False)
@click.option(
    "--builds",
    is_flag=True,
    help="Instead: this tree's build records against each one's latest published version.",
)
@click.option("--markdown", is_flag=True, help="With --builds: a Markdown job summary.")
@index_option
@json_option
@pass_state
def diff(
    state: State,
    first: str | None,
    second: str | None,
    builds: bool,
    markdown: bool,
    location: str | None,
    as_json: bool,
) -> int:
    """The package changes between two versions (without B: since the version before A)."""
    from envrepo.index import read
    from envrepo.index.diff import summary

    index = read.Index(index_location(state, location))
    if builds:
        from envrepo.publish import report

        found = report.against_published(state.catalog(), index)
        if as_json:
            emit_json([{"name": n, "from": v, "diff": d} for n, v, d in found])
        elif markdown:
            click.echo(report.markdown(found))
        else:
            for name, version, changes in found:
                since = f"{name}@{version}" if version else "nothing published"
                click.echo(f"{name} (since {since}): {summary(changes)}")
        return ExitCode.OK
    if first is None:
        raise EnvrepoError("give NAME@A [NAME@B], or --builds")
    old, new, changes = read.compare(
        index, parse(first), parse(second) if second is not None else None
    )
    if as_json:
        emit_json({"from": old, "to": new, "diff": changes})
        return ExitCode.OK
    click.echo(f"{old} → {new}: {summary(changes)}")
    for line in changes_lines(changes):
        click.echo(line)
    return ExitCode.OK
