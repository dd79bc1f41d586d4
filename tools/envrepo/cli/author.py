"""`envrepo scaffold` and `envrepo add`: new environments, and packages added to one."""

from __future__ import annotations

from pathlib import Path

import click

from envrepo.cli.options import State, pass_state
from envrepo.cli.report import note
from envrepo.errors import ExitCode


@click.command()
@click.argument("name")
@click.option(
    "--from-conda",
    "conda_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Start from an environment.yml (channels, packages, pip list, python).",
)
@click.option(
    "--from-pip",
    "pip_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Start from a requirements.txt (includes inlined).",
)
@click.option(
    "--from-pyproject",
    "pyproject",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Start from a pyproject.toml's [project] dependencies.",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="With --from-pyproject: an optional dependency group to take too (repeatable).",
)
@click.option(
    "--from-uv-lock",
    "uv_lock",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Start from a uv.lock, its exact pins kept.",
)
@click.option(
    "--from-env",
    "prefix",
    type=click.Path(path_type=Path, file_okay=False),
    help="Start from an environment on disk (conda prefix or venv), pinned.",
)
@click.option("--base-environment", help="Base it on this environment of the repository.")
@click.option("--base-image", help="Base it on this image reference.")
@click.option(
    "--bootstrap",
    metavar="SUITE",
    help="Make a root: Debian SUITE (such as bookworm) from the Debian archive, by debootstrap.",
)
@click.option("--python", help='Python version, such as "3.11".')
@click.option("--description", default="", help="What the environment is for.")
@click.option("--curated", is_flag=True, help="A curated environment (reserved prefix).")
@pass_state
def scaffold(
    state: State,
    name: str,
    conda_file: Path | None,
    pip_file: Path | None,
    pyproject: Path | None,
    groups: tuple[str, ...],
    uv_lock: Path | None,
    prefix: Path | None,
    base_environment: str | None,
    base_image: str | None,
    bootstrap: str | None,
    python: str | None,
    description: str,
    curated: bool,
) -> int:
    """Create environments/NAME, empty or from an existing definition."""
    from envrepo.author.scaffold import Request, scaffold_environment

    if sum(s is not None for s in (conda_file, pip_file, pyproject, uv_lock, prefix)) > 1:
        raise click.UsageError(
            "give at most one of --from-conda, --from-pip, --from-pyproject, --from-uv-lock, "
            "--from-env"
        )
    if groups and pyproject is None:
        raise click.UsageError("--group goes with --from-pyproject")
    if sum(b is not None for b in (base_environment, base_image, bootstrap)) > 1:
        raise click.UsageError("give at most one of --base-environment, --base-image, --bootstrap")
    if bootstrap is not None and any(
        s is not None for s in (conda_file, pip_file, pyproject, uv_lock, prefix)
    ):
        raise click.UsageError(
            "--bootstrap makes a bare root; scaffold the packages as an environment on it"
        )
    catalog = state.catalog()
    request = Request(
        name,
        conda_file,
        pip_file,
        prefix,
        pyproject,
        groups,
        uv_lock,
        base_environment,
        base_image,
        python,
        description,
        curated,
        bootstrap,
    )
    made = scaffold_environment(catalog, request)
    for warning in made.warnings:
        note(warning.line())
    if made.base_chosen:
        note(f"chose {made.base_chosen}")
    click.echo(f"created {catalog.repo.display(made.folder)}")
    for problem in made.problems:
        note(problem.line())
    if made.needs_lock:
        note(f"next: envrepo lock {name}")
    return ExitCode.OK


@click.command()
@click.argument("name")
@click.argument("packages", nargs=-1, required=True, metavar="PKG...")
@click.option("--conda", "to_conda", is_flag=True, help="Add to the conda input, not pip.")
@pass_state
def add(state: State, name: str, packages: tuple[str, ...], to_conda: bool) -> int:
    """Add packages to an environment's pip (or conda) input."""
    from envrepo.author.add import add as add_packages

    catalog = state.catalog()
    for path in add_packages(catalog, name, list(packages), to_conda):
        click.echo(f"updated {catalog.repo.display(path)}")
    note(f"next: envrepo lock {name}")
    return ExitCode.OK
