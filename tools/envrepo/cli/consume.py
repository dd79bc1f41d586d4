"""`envrepo pin`, `resolve` and `download`: another repository's side of a published index."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from envrepo.cli.options import State, index_option, json_option, pass_state
from envrepo.cli.report import changes_lines, emit_json, note
from envrepo.errors import EnvrepoError, ExitCode
from envrepo.index.reference import parse


def _index(state: State, given: str | None, pinned: str | None = None) -> str:
    """--index, else the index a pin came from, else envrepo.yaml's index.url."""
    found = given or pinned or state.repository().config.index_url
    if not found:
        raise EnvrepoError(
            "no index: pass --index LOC (a folder, file:// or http(s):// URL), "
            "or set index.url in envrepo.yaml"
        )
    return found


@click.command()
@click.argument("reference", required=False, metavar="NAME[@VERSION|@sha-COMMIT|@h-HASH]")
@index_option
@click.option("--check", is_flag=True, help="Check every pin against its index and registry.")
@click.option("--strict", is_flag=True, help="With --check: newer versions fail the check too.")
@click.option("--update", is_flag=True, help="Move pins (or NAME's) to the newest version.")
@click.option(
    "--min-age",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="DAYS",
    help="With --update: only versions first published at least DAYS ago.",
)
@json_option
@pass_state
def pin(
    state: State,
    reference: str | None,
    location: str | None,
    check: bool,
    strict: bool,
    update: bool,
    min_age: float,
    as_json: bool,
) -> int:
    """Pin a published environment in envrepo.lock, check the pins, or move them."""
    from envrepo.consume import lockfile, pins
    from envrepo.index.diff import summary
    from envrepo.index.read import Index

    root = state.repository().root
    current = lockfile.read(root)
    if check and update:
        raise EnvrepoError("--check and --update: give one of them")
    if check:
        if reference is not None:
            raise EnvrepoError("--check checks every pin; leave out NAME")
        results = [pins.check(p, Index(p.index)) for p in current.pins.values()]
        if (root / "envrepo.yaml").is_file():
            results += pins.base_checks(list(state.catalog().specs.values()))
        if as_json:
            emit_json(
                [
                    {
                        "name": r.pin.name,
                        "version": r.pin.version,
                        "outcome": r.outcome,
                        "message": r.line,
                        "newer": r.newer,
                    }
                    for r in results
                ]
            )
        for result in results:
            if not as_json:
                click.echo(result.line)
        failing = {"changed", "gone", "deprecated"} | ({"newer"} if strict else set())
        return ExitCode.PROBLEMS if any(r.outcome in failing for r in results) else ExitCode.OK
    if update:
        now = datetime.datetime.now(datetime.UTC)
        moved, moves, stayed = pins.update(current, reference, min_age, now)
        lockfile.write(root, moved)
        for move in moves:
            click.echo(f"{move.name}: {move.old} → {move.new}: {summary(move.changes)}")
            for line in changes_lines(move.changes):
                click.echo(line)
        for line in stayed:
            note(line)
        return ExitCode.OK
    if reference is None:
        raise EnvrepoError("give NAME[@VERSION] to pin, or --check, or --update")
    wanted = parse(reference)
    known = current.pins.get(wanted.name)
    index = Index(_index(state, location, known.index if known else None))
    updated, made = pins.pin(current, index, wanted)
    path = lockfile.write(root, updated)
    click.echo(f"pinned {made.name}@{made.version} ({made.image}) in {path.name}")
    return ExitCode.OK


@click.command()
@click.argument("reference", metavar="NAME[@VERSION]")
@index_option
@pass_state
def resolve(state: State, reference: str, location: str | None) -> int:
    """Print the image of NAME[@VERSION] by digest: the pin's, else the index's."""
    from envrepo.consume import fetch, lockfile
    from envrepo.index.read import Index

    wanted = parse(reference)
    current = lockfile.read(state.repository().root)
    pinned = current.pins.get(wanted.name)
    given = location or (None if pinned else state.repository().config.index_url)
    click.echo(fetch.resolve(current, wanted, Index(given) if given else None))
    return ExitCode.OK


@click.command()
@click.argument("reference", metavar="NAME@VERSION")
@click.option(
    "-d",
    "--dir",
    "target",
    type=click.Path(path_type=Path),
    required=True,
    help="A new or empty folder for the environment's folder.",
)
@index_option
@pass_state
def download(state: State, reference: str, target: Path, location: str | None) -> int:
    """Write an environment's folder as that version published it, hash checked."""
    from envrepo.consume import fetch, lockfile
    from envrepo.index.read import Index

    wanted = parse(reference)
    pinned = lockfile.read(state.repository().root).pins.get(wanted.name)
    index = Index(_index(state, location, pinned.index if pinned else None))
    written = fetch.download(index, wanted, target)
    click.echo(f"wrote {len(written)} files of {reference} into {target}")
    return ExitCode.OK
