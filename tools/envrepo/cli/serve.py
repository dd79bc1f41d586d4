"""`envrepo serve`: a scoring web service for an environment, a model and an entry script."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from envrepo.cli.options import State, index_option, pass_state, registry_option
from envrepo.cli.report import note
from envrepo.errors import EnvrepoError, ExitCode

if TYPE_CHECKING:
    from envrepo.serve.image import Model


@click.command()
@click.argument("reference", metavar="NAME[@VERSION]", required=False)
@click.option(
    "--model",
    "models",
    type=click.Path(path_type=Path),
    multiple=True,
    help=(
        "A model: a file or folder, or NAME@V registered with `envrepo model register` (again "
        "for several); laid out as Azure ML lays them out."
    ),
)
@click.option("--entry-script", type=click.Path(path_type=Path), help="init() and run(raw_data).")
@click.option(
    "--source-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The entry script's folder, copied into the image (default: the script's folder).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5001, help="Loopback port.")
@click.option("--name", default=None, help="The service's name (default: the environment's).")
@click.option("--detach", is_flag=True, help="Leave it running and return once it is ready.")
@click.option("--workers", type=click.IntRange(1, 64), default=2, help="Server processes.")
@click.option(
    "--max-body", type=click.IntRange(1), default=1 << 20, help="Largest request body, bytes."
)
@click.option(
    "--read-timeout", type=click.FloatRange(0.1), default=10.0, help="Seconds for a body to arrive."
)
@click.option(
    "--scoring-timeout", type=click.FloatRange(0.1), default=60.0, help="Seconds run() may take."
)
@click.option("--stop", "stop_name", default=None, metavar="NAME", help="Stop the service NAME.")
@index_option
@registry_option
@pass_state
def serve(
    state: State,
    reference: str | None,
    models: tuple[Path, ...],
    entry_script: Path | None,
    source_dir: Path | None,
    port: int,
    name: str | None,
    detach: bool,
    workers: int,
    max_body: int,
    read_timeout: float,
    scoring_timeout: float,
    stop_name: str | None,
    location: str | None,
    registry: str | None,
) -> int:
    """Serve a model with an entry script (Azure ML's init()/run()) in an environment's image."""
    from envrepo.cli.images import environment
    from envrepo.engine.docker import Docker
    from envrepo.serve import image, service

    engine = Docker()
    if stop_name is not None:
        if service.stop(engine, stop_name):
            click.echo(f"stopped {stop_name}")
            return ExitCode.OK
        raise EnvrepoError(f"--stop {stop_name}: no such service is running")
    if reference is None or not models or entry_script is None:
        raise EnvrepoError("give NAME[@VERSION], --model and --entry-script (or --stop NAME)")
    found = environment(state, reference, location, registry, engine)
    source = source_dir or entry_script.resolve().parent
    served = [_model(state, given, registry) for given in models]
    built = image.build(engine, found, entry_script, source, served, note)
    service_name = name or found.name
    limits = service.Limits(max_body, read_timeout, scoring_timeout, workers)
    started = service.start(engine, built.tag, service_name, port, limits)
    if not started.ready:
        raise EnvrepoError(
            f"{service_name}: {started.error}; the service answers 503 at {started.url} "
            f"(docker logs {service.container(service_name)}); envrepo serve --stop {service_name}",
            code=ExitCode.PROBLEMS,
        )
    click.echo(f"{service_name} is ready: POST {started.url}/score")
    if detach:
        return ExitCode.OK
    try:
        engine.follow(service.container(service_name), note)
    finally:
        service.stop(engine, service_name)
    return ExitCode.OK


def _model(state: State, given: Path, registry: str | None) -> Model:
    """A `--model`: a path here, else a registered model's NAME@V, from the registry."""
    from envrepo.serve.image import Model

    text = str(given)
    if given.exists() or given.is_symlink() or "@" not in text:
        return Model.at(given)
    from envrepo.cli.images import registry_of
    from envrepo.models import artifact, store

    reference = artifact.parse(text)
    shown, folder = store.fetch(registry_of(state, registry), reference)
    return Model(folder, shown.name, shown.version, as_they_are=True)
