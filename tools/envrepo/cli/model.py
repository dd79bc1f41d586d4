"""`envrepo model`: models as versioned artifacts in the registry."""

from __future__ import annotations

from pathlib import Path

import click

from envrepo.cli.images import registry_of
from envrepo.cli.options import State, json_option, pass_state, registry_option
from envrepo.cli.report import emit_json, fields, table
from envrepo.errors import EnvrepoError, ExitCode


@click.group()
def model() -> None:
    """Register, list, show and download models (OCI artifacts in the registry)."""


@model.command()
@click.argument("name")
@click.option("--path", "path", type=click.Path(path_type=Path), help="A model file or folder.")
@click.option(
    "--from-run",
    "run",
    type=click.Path(path_type=Path),
    help="An envrepo run's output folder: its files, with the run's provenance.",
)
@json_option
@registry_option
@pass_state
def register(
    state: State,
    name: str,
    path: Path | None,
    run: Path | None,
    as_json: bool,
    registry: str | None,
) -> int:
    """Push a model as the next version of NAME (the same content again: its version)."""
    from envrepo.models import store

    source = path if run is None else run
    if source is None or (path is not None and run is not None):
        raise EnvrepoError("give one of --path P and --from-run DIR")
    found = store.register(registry_of(state, registry), name, source, run is not None)
    if as_json:
        emit_json(
            {"name": found.name, "version": found.version, "digest": found.digest, "new": found.new}
        )
    else:
        said = "registered" if found.new else "already registered with this content"
        click.echo(f"{found.name}@{found.version} {said} ({found.digest})")
    return ExitCode.OK


@model.command("list")
@click.argument("name", required=False)
@json_option
@registry_option
@pass_state
def list_models(state: State, name: str | None, as_json: bool, registry: str | None) -> int:
    """The models in the registry, or NAME's versions."""
    from envrepo.models import store

    found = registry_of(state, registry)
    rows = (
        {name: store.versions(found, name)}
        if name
        else {model: store.versions(found, model) for model in store.names(found)}
    )
    if as_json:
        emit_json(rows)
    else:
        table(
            ["MODEL", "VERSIONS", "LATEST"],
            [[m, ", ".join(map(str, v)), str(v[-1]) if v else "-"] for m, v in rows.items()],
        )
    return ExitCode.OK


@model.command()
@click.argument("reference", metavar="NAME[@V]")
@json_option
@registry_option
@pass_state
def show(state: State, reference: str, as_json: bool, registry: str | None) -> int:
    """One version of a model (the latest without @V): digest, size, provenance."""
    from envrepo.models import artifact, store

    found = store.show(registry_of(state, registry), artifact.parse(reference))
    if as_json:
        emit_json(
            {
                "name": found.name,
                "version": found.version,
                "digest": found.digest,
                "size": found.size,
                "annotations": found.annotations,
            }
        )
    else:
        fields(
            [
                ("model", f"{found.name}@{found.version}"),
                ("digest", found.digest),
                ("size", f"{found.size} bytes"),
                *sorted(
                    (key.removeprefix(artifact.PREFIX), value)
                    for key, value in found.annotations.items()
                    if key.startswith(artifact.PREFIX) and key != f"{artifact.PREFIX}name"
                ),
            ]
        )
    return ExitCode.OK


@model.command()
@click.argument("reference", metavar="NAME[@V]")
@click.option(
    "-d", "--dir", "target", type=click.Path(path_type=Path), required=True, help="A new folder."
)
@registry_option
@pass_state
def download(state: State, reference: str, target: Path, registry: str | None) -> int:
    """The model's files into a new folder, checked against their digest first."""
    from envrepo.models import artifact, store

    found, written = store.download(registry_of(state, registry), artifact.parse(reference), target)
    click.echo(f"{found.name}@{found.version}: {len(written)} files in {target}")
    return ExitCode.OK
