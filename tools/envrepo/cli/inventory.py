"""`envrepo list` and `envrepo show`: what the repository's environments are."""

from __future__ import annotations

import click

from envrepo.cli.options import State, json_option, pass_state
from envrepo.cli.report import emit_json, fields, note, table
from envrepo.errors import ExitCode


@click.command("list")
@json_option
@pass_state
def list_command(state: State, as_json: bool) -> int:
    """List the environments of the repository."""
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
@click.argument("name")
@json_option
@pass_state
def show(state: State, name: str, as_json: bool) -> int:
    """Show one environment: its spec, inputs, locks and hash."""
    from envrepo import inventory

    shown = inventory.show(state.catalog(), name)
    if as_json:
        emit_json(shown.described)
    else:
        fields(shown.fields)
    return ExitCode.OK
