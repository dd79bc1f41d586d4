"""`envrepo run` and `envrepo run-info`: training runs in an environment's image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from envrepo.cli.options import State, json_option, pass_state, registry_option
from envrepo.cli.publish import index_location, index_option
from envrepo.cli.report import emit_json, fields, note
from envrepo.errors import EnvrepoError, ExitCode
from envrepo.index.reference import parse, release

if TYPE_CHECKING:
    from envrepo.engine.docker import Docker
    from envrepo.hashing import SpecHash
    from envrepo.run import Environment


def environment(
    state: State, reference: str, location: str | None, registry: str | None, engine: Docker
) -> Environment:
    """The image a run or a service uses. NAME@VERSION: the pin in envrepo.lock, else the
    index, pulled by digest. NAME: this repository's environment at its current spec hash,
    from this machine, else the registry, else built now."""
    from envrepo.build import naming
    from envrepo.engine.credentials import credentials
    from envrepo.engine.registry import split_image
    from envrepo.run import Environment

    wanted = parse(reference)
    name = wanted.name
    if wanted.at:
        from envrepo.consume import lockfile
        from envrepo.publish.read import Index

        pinned = lockfile.read(state.repository().root).pins.get(name)
        if pinned is not None and wanted.number == pinned.version:
            found = Environment(name, pinned.version, pinned.hash, pinned.image, pinned.digest)
        else:
            entry = release(Index(index_location(state, location)).environment(name), wanted)
            found = Environment(
                name, int(entry["number"]), entry["hash"], entry["image"], entry["digest"]
            )
        if engine.image(found.image) is None:
            note(f"pulling {found.image}")
            host = split_image(found.image)[0]
            creds = credentials(host, None)
            engine.pull(found.image, creds.for_docker() if creds else None)
        return found
    from envrepo.hashing import hash_environments
    from envrepo.repo.spec import get

    catalog = state.catalog()
    spec = get(catalog, name)
    spec_hash = hash_environments(catalog, [spec.name])[spec.name]
    host = naming.local_or_registry(catalog.repo, registry)
    image = naming.by_hash(host, spec.name, spec_hash)
    if engine.image(image) is None:
        from envrepo.build.builder import Request, build_environments

        note(f"{image} is not on this machine: building it")
        outcome = build_environments(catalog, Request(names=(spec.name,), registry=registry), note)
        if outcome.failed:
            raise EnvrepoError(*[line for error in outcome.failed for line in error.lines])
    digest = None if host == naming.LOCAL else _digest(host, spec.name, spec_hash)
    return Environment(spec.name, None, spec_hash.value, image, digest)


def _digest(host: str, name: str, spec_hash: SpecHash) -> str | None:
    """The registry's manifest digest of the image with this hash; None when it holds none
    or cannot be asked (a run on this machine's image goes on without it)."""
    from envrepo.build import naming
    from envrepo.engine.registry import connect

    try:
        return connect(host, host).manifest_digest(name, naming.hash_tag(spec_hash))
    except EnvrepoError:
        return None


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
