"""`envrepo run` and `envrepo run-info`: training runs in an environment's image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from envrepo.cli.options import (
    State,
    index_option,
    json_option,
    pass_state,
    registry_option,
)
from envrepo.cli.report import emit_json, fields, note
from envrepo.errors import ExitCode

if TYPE_CHECKING:
    pass


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("reference", metavar="NAME[@VERSION]")
@click.option(
    "--source-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(),
    help="The folder copied into the run as its working folder (default: here).",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("outputs"),
    help="Where ./outputs of the run lands, with run.json and run.log (default: ./outputs).",
)
@click.option("--env", "variables", multiple=True, metavar="K=V", help="A variable for the run.")
@click.option("--mount", "mounts", multiple=True, metavar="SRC:DST[:ro]", help="A host folder.")
@click.option("--shm-size", default=None, help="Shared memory, such as 2g.")
@click.option("--gpus", default=None, help="GPUs: a count, or all.")
@index_option
@registry_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD...")
@pass_state
def run(
    state: State,
    reference: str,
    source_dir: Path,
    output_dir: Path,
    variables: tuple[str, ...],
    mounts: tuple[str, ...],
    shm_size: str | None,
    gpus: str | None,
    location: str | None,
    registry: str | None,
    command: tuple[str, ...],
) -> int:
    """Run a command in an environment's image, with the source folder as a snapshot."""
    from envrepo import run as running
    from envrepo.cli.images import environment
    from envrepo.engine.docker import Docker

    engine = Docker()
    found = environment(state, reference, location, registry, engine)
    request = running.Request(command, source_dir, output_dir, variables, mounts, shm_size, gpus)
    code = running.run(engine, found, request, lambda line: click.echo(line))
    note(f"exit {code}; the record is {output_dir / running.RECORD}")
    sys.stdout.flush()
    return code


@click.command("run-info")
@click.argument("folder", type=click.Path(path_type=Path))
@json_option
def run_info(folder: Path, as_json: bool) -> int:
    """The environment a past run used, and the command that runs it again."""
    from envrepo import run as running

    record, again = running.info(folder)
    if as_json:
        emit_json({**record, "again": again})
        return ExitCode.OK
    environment = record["environment"]
    fields(
        [
            (
                "environment",
                environment["name"]
                + (
                    f"@{environment['version']}"
                    if environment.get("version")
                    else " (working tree)"
                ),
            ),
            ("spec hash", environment["hash"]),
            ("image", environment["image"]),
            ("digest", environment.get("digest") or "-"),
            ("command", " ".join(record["command"])),
            (
                "source",
                f"{record['source']['folder']} at {record['source']['commit'] or '-'}"
                + (" (dirty)" if record["source"].get("dirty") else ""),
            ),
            ("started", record["start"]),
            ("ended", record["end"] or "-"),
            ("exit code", str(record["exit_code"])),
        ]
    )
    click.echo(f"again:\n{again}")
    return ExitCode.OK
