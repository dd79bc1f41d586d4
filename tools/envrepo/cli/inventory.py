"""`envrepo list` and `envrepo show`: what the repository's environments are, or what a
published index holds (`--index`)."""

from __future__ import annotations

import click

from envrepo.cli.options import State, index_location, index_option, json_option, pass_state
from envrepo.cli.report import emit_json, fields, note, table
from envrepo.errors import ExitCode


@click.command("list")
@index_option
@json_option
@pass_state
def list_command(state: State, location: str | None, as_json: bool) -> int:
    """List the environments of the repository, or of a published index."""
    if location is not None:
        from envrepo.index import read

        rows, top = read.listing(read.Index(location))
        if as_json:
            emit_json(top["environments"])
        else:
            table(read.HEADERS, rows)
        return ExitCode.OK
    from envrepo import inventory

    found = inventory.listing(state.catalog(), detailed=as_json)
    if as_json:
        emit_json(found.described)
    else:
        table(inventory.HEADERS, found.rows)
    if found.broken:
        note(f"not listed, they do not load: {', '.join(found.broken)}; run envrepo validate")
    return ExitCode.OK


@click.command()
@click.argument("name", metavar="NAME[@VERSION]")
@index_option
@json_option
@pass_state
def show(state: State, name: str, location: str | None, as_json: bool) -> int:
    """Show one environment: from the working tree (NAME), or a version of it from a
    published index (--index, or NAME@VERSION from the repository's index)."""
    if location is not None or "@" in name:
        from envrepo.index import read
        from envrepo.index.reference import parse

        index = read.Index(index_location(state, location))
        found = read.version(index, parse(name))
        if as_json:
            emit_json({**found.entry, "name": found.environment["name"], **found.document})
        else:
            fields(read.fields(found))
        return ExitCode.OK
    from envrepo import inventory

    shown = inventory.show(state.catalog(), name)
    if as_json:
        emit_json(shown.described)
    else:
        fields(shown.fields)
    return ExitCode.OK
