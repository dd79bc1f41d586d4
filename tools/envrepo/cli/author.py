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
    if base_environment and base_image:
        raise click.UsageError("give at most one of --base-environment, --base-image")
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


@click.command()
@click.option(
    "--platform",
    "kind",
    flag_value="platform",
    help="A repository that builds and publishes environments.",
)
@click.option(
    "--consumer",
    "kind",
    flag_value="consumer",
    default=True,
    help="A repository that pins published environments (the default).",
)
@click.option("--registry", default=None, help="Platform: where images are pushed.")
@click.option("--index", "index", default=None, help="The index URL (published, or read).")
@click.option("--hooks-repo", default=None, help="Where envrepo's pre-commit hooks come from.")
@click.option("--hooks-rev", default=None, help="The hooks' revision (default: this version).")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), default=".")
def init(
    kind: str,
    registry: str | None,
    index: str | None,
    hooks_repo: str | None,
    hooks_rev: str | None,
    folder: Path,
) -> int:
    """Start a repository that uses envrepo: its config, hooks and .gitignore."""
    from envrepo import __version__
    from envrepo.author import init as starting

    folder.mkdir(parents=True, exist_ok=True)
    request = starting.Request(
        "platform" if kind == "platform" else "consumer",
        registry,
        index,
        hooks_repo or starting.HOOKS_REPO,
        hooks_rev or f"v{__version__}",
    )
    written, kept = starting.init(folder, request)
    for name in written:
        click.echo(f"wrote {folder / name}")
    if kept:
        note(f"left as they were: {', '.join(kept)}")
    return ExitCode.OK
