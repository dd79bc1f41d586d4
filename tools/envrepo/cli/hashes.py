"""`envrepo hash`: spec hashes, and with --json what went into each."""

from __future__ import annotations

import click

from envrepo.cli.options import State, json_option, names_argument, pass_state
from envrepo.cli.report import emit_json
from envrepo.errors import ExitCode


@click.command("hash")
@names_argument
@json_option
@pass_state
def hash_command(state: State, names: tuple[str, ...], as_json: bool) -> int:
    """Print spec hashes (all environments, or NAMEs)."""
    from envrepo.hashing import hash_environments

    hashes = hash_environments(state.catalog(), names or None)
    if as_json:
        emit_json(
            [{"name": h.name, "hash": h.value, "inputs": h.inputs()} for h in hashes.values()]
        )
    else:
        for item in hashes.values():
            click.echo(f"{item.value}  {item.name}")
    return ExitCode.OK
