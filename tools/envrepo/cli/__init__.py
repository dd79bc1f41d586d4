"""The envrepo command line: parses arguments and hands them to the pipeline stages."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from envrepo import __version__
from envrepo.cli.report import count, emit_json, fields, note, table
from envrepo.errors import EnvrepoError, ExitCode, Problem
from envrepo.repo.config import Repository, open_repository
from envrepo.repo.spec import Catalog, load_catalog

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    start: Path | None
    _repo: tuple[Repository, list[Problem]] | None = field(default=None)

    def opened(self) -> tuple[Repository, list[Problem]]:
        if self._repo is None:
            start = self.start if self.start is not None else Path.cwd()
            self._repo = open_repository(start, explicit=self.start is not None)
        return self._repo

    def repository(self) -> Repository:
        """The repository, refusing to go on when its envrepo.yaml is broken."""
        repo, problems = self.opened()
        if problems:
            raise EnvrepoError(*problems)
        return repo

    def catalog(self) -> Catalog:
        return load_catalog(self.repository())


pass_state = click.make_pass_decorator(State)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(command)


def names_argument(command: F) -> F:
    return click.argument("names", nargs=-1, metavar="[NAME]...")(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "--repo",
    "repo_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The environment repository (default: found from the current directory).",
)
@click.version_option(__version__, prog_name="envrepo")
@click.pass_context
def cli(ctx: click.Context, repo_dir: Path | None) -> None:
    """A git repository as the registry of record for reusable ML environments."""
    ctx.obj = State(repo_dir)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as problems (exit 1).")
@pass_state
def validate(state: State, paths: tuple[Path, ...], strict: bool) -> int:
    """Check envrepo.yaml and environments (all, or those PATHS are in)."""
    from envrepo.validate import select
    from envrepo.validate import validate as run

    repo, config_problems = state.opened()
    catalog = load_catalog(repo)
    problems = run(catalog, config_problems, select(paths, repo) if paths else None)
    for problem in problems:
        click.echo(problem.line())
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    checked = len(catalog.folders)
    if errors or warnings:
        note(
            f"envrepo validate: {count(errors, 'error')}, {count(warnings, 'warning')} "
            f"in {count(checked, 'environment')}"
        )
    failed = errors or (strict and warnings)
    return ExitCode.PROBLEMS if failed else ExitCode.OK


@cli.command("hash")
@names_argument
@json_option
@pass_state
def hash_command(state: State, names: tuple[str, ...], as_json: bool) -> int:
    """Print spec hashes (all environments, or NAMEs)."""
    from envrepo.hashing import hash_environments

    catalog = state.catalog()
    hashes = hash_environments(catalog, names or None)
    if as_json:
        emit_json(
            [{"name": h.name, "hash": h.digest, "inputs": h.inputs()} for h in hashes.values()]
        )
    else:
        for item in hashes.values():
            click.echo(f"{item.digest}  {item.name}")
    return ExitCode.OK


@cli.command("list")
@json_option
@pass_state
def list_command(state: State, as_json: bool) -> int:
    """List the environments of the repository."""
    from envrepo import inventory

    catalog = state.catalog()
    hashes = inventory.hashes_or_none(catalog)
    specs = [catalog.specs[name] for name in sorted(catalog.specs)]
    if as_json:
        emit_json([inventory.describe(spec, hashes[spec.name], catalog) for spec in specs])
    else:
        table(inventory.HEADERS, [inventory.row(spec, hashes[spec.name]) for spec in specs])
    broken = sorted(set(catalog.folders) - set(catalog.specs))
    if broken:
        note(f"not listed, they do not load: {', '.join(broken)}; run envrepo validate")
    return ExitCode.OK


@cli.command()
@click.argument("name")
@json_option
@pass_state
def show(state: State, name: str, as_json: bool) -> int:
    """Show one environment: its spec, inputs, locks and hash."""
    from envrepo import inventory
    from envrepo.hashing import hash_environments
    from envrepo.repo.spec import get

    if "@" in name:
        raise EnvrepoError(
            Problem(
                name,
                "",
                (
                    "versions come from a published index, which this repository has not "
                    "published yet; show the working tree with the bare name"
                ),
            )
        )
    catalog = state.catalog()
    spec = get(catalog, name)
    digest = hash_environments(catalog, [name])[name]
    info = inventory.describe(spec, digest, catalog)
    if as_json:
        emit_json(info)
        return ExitCode.OK
    pairs = [
        ("name", spec.name),
        ("folder", spec.display),
        ("description", spec.description or "-"),
        ("curated", "yes" if spec.curated else "no"),
        ("base", spec.base.describe()),
        ("python", spec.python),
        ("platforms", ", ".join(spec.platforms)),
        ("inputs", ", ".join(f"{k}={v}" for k, v in spec.inputs().items()) or "-"),
        ("locks", ", ".join(f"{k} ({v})" for k, v in info["locks"].items()) or "-"),
        ("apt", ", ".join(spec.apt) or "-"),
        ("variables", ", ".join(f"{k}={v}" for k, v in spec.variables.items()) or "-"),
        ("user_managed", "yes" if spec.user_managed else "no"),
        ("interpreter", spec.interpreter),
        ("labels", ", ".join(f"{k}={v}" for k, v in spec.labels.items()) or "-"),
        ("hash", digest.digest),
    ]
    fields(pairs)
    return ExitCode.OK


@cli.command()
@names_argument
@click.option("--all", "every", is_flag=True, help="Lock every environment.")
@click.option(
    "--changed",
    is_flag=True,
    help="Only environments whose lock is missing or stale (the default).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Only report missing or stale locks (exit 1); reads files, no network.",
)
@click.option(
    "--fail-if-changed",
    is_flag=True,
    help="Exit 1 when a lock was written (for hooks: the commit then shows the new locks).",
)
@click.option(
    "-U",
    "--upgrade",
    "upgrade_all",
    is_flag=True,
    help="Re-resolve every package, not keeping the current pins.",
)
@click.option(
    "-P",
    "--upgrade-package",
    "upgrade",
    multiple=True,
    metavar="PKG",
    help="Re-resolve only PKG (repeatable); every other pin stays.",
)
@pass_state
def lock(
    state: State,
    names: tuple[str, ...],
    every: bool,
    changed: bool,
    check: bool,
    fail_if_changed: bool,
    upgrade_all: bool,
    upgrade: tuple[str, ...],
) -> int:
    """Write lock files for environments (NAMEs, --all, or --changed).

    NAMEs and --all resolve again, keeping current pins unless told to upgrade; --changed
    (the default) touches only missing or stale locks and needs no network otherwise.
    """
    from envrepo.lock import files as locks
    from envrepo.repo import graph
    from envrepo.repo.spec import get

    if names and (every or changed):
        raise click.UsageError("give NAMEs, or --all, or --changed, not several")
    catalog = state.catalog()
    chosen = [get(catalog, name).name for name in names] or list(catalog.specs)
    ordered = graph.ordered(catalog.specs, chosen)
    if check:
        parent_of = graph.parents(catalog.specs)
        problems = [
            p
            for name in ordered
            for p in locks.check(
                catalog.specs[name], graph.ancestors(name, catalog.specs, parent_of)
            )
        ]
        for problem in problems:
            click.echo(problem.line())
        return ExitCode.PROBLEMS if problems else ExitCode.OK
    from envrepo.cli.report import is_terminal
    from envrepo.lock.pip import Request
    from envrepo.lock.runner import lock_all, refusal

    only_stale = not (names or every or upgrade_all or upgrade)
    request = Request(upgrade_all=upgrade_all, upgrade=upgrade)
    interactive = is_terminal() and not os.environ.get("CI")
    outcome = lock_all(catalog, ordered, only_stale, request, interactive)
    for path in outcome.changed:
        click.echo(f"wrote {catalog.repo.display(path)}")
    for error in outcome.failed:
        for line in error.lines:
            click.echo(line, err=True)
    for name in outcome.skipped:
        click.echo(refusal(name).line(), err=True)
    note(
        f"envrepo lock: {count(len(outcome.changed), 'lock')} changed, "
        f"{len(outcome.unchanged)} unchanged, {count(len(outcome.failed), 'environment')} "
        f"failed, {len(outcome.skipped)} skipped"
    )
    if outcome.failed:
        return ExitCode.USAGE
    return ExitCode.PROBLEMS if fail_if_changed and outcome.changed else ExitCode.OK


@cli.command()
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
    prefix: Path | None,
    base_environment: str | None,
    base_image: str | None,
    python: str | None,
    description: str,
    curated: bool,
) -> int:
    """Create environments/NAME, empty or from an existing definition."""
    from envrepo.author import scaffold as scaffolding
    from envrepo.validate import environment_problems

    sources = [s for s in (conda_file, pip_file, prefix) if s is not None]
    if len(sources) > 1:
        raise click.UsageError("give at most one of --from-conda, --from-pip, --from-env")
    if base_environment and base_image:
        raise click.UsageError("give at most one of --base-environment, --base-image")
    if conda_file is not None:
        inputs = scaffolding.from_conda(conda_file)
    elif pip_file is not None:
        inputs = scaffolding.from_pip(pip_file)
    elif prefix is not None:
        inputs = scaffolding.from_env(prefix)
    else:
        inputs = scaffolding.Inputs()
    base = (
        {"environment": base_environment}
        if base_environment
        else {"image": base_image}
        if base_image
        else None
    )
    catalog = state.catalog()
    folder = scaffolding.scaffold(catalog, name, inputs, base, python, description, curated)
    for message in inputs.notes:
        note(f"note: {message}")
    click.echo(f"created {catalog.repo.display(folder)}")
    catalog = state.catalog()
    problems = environment_problems(catalog.specs[name], catalog)
    for problem in problems:
        note(problem.line())
    if inputs.pip is not None or inputs.conda is not None:
        note(f"next: envrepo lock {name}")
    return ExitCode.OK


@cli.command()
@click.argument("name")
@click.argument("packages", nargs=-1, required=True, metavar="PKG...")
@click.option("--conda", "to_conda", is_flag=True, help="Add to the conda input, not pip.")
@pass_state
def add(state: State, name: str, packages: tuple[str, ...], to_conda: bool) -> int:
    """Add packages to an environment's pip (or conda) input."""
    from envrepo.author import add as edit
    from envrepo.repo.spec import get

    catalog = state.catalog()
    spec = get(catalog, name)
    if spec.user_managed:
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "user_managed",
                ("is true, so the environment installs nothing; set it to false first"),
            )
        )
    if to_conda:
        changed = edit.add_conda(spec, list(packages), catalog.repo.config.defaults.channels)
    else:
        changed = edit.add_pip(spec, list(packages))
    for path in changed:
        click.echo(f"updated {catalog.repo.display(path)}")
    note(f"next: envrepo lock {name}")
    return ExitCode.OK


def registry_option(command: F) -> F:
    return click.option(
        "--registry",
        default=None,
        help="Registry host[:port] (default: $ENVREPO_REGISTRY, else envrepo.yaml's registry).",
    )(command)


def _registry_host(repo: Repository, given: str | None) -> str | None:
    return given or os.environ.get("ENVREPO_REGISTRY") or repo.config.registry


def _registry(repo: Repository, given: str | None) -> Any:
    from envrepo.engine.registry import connect

    host = _registry_host(repo, given)
    if not host:
        raise EnvrepoError("no registry: set registry in envrepo.yaml or pass --registry")
    return connect(host)


@cli.command("render")
@click.argument("name")
@pass_state
def render_command(state: State, name: str) -> int:
    """Print a Dockerfile that makes the same filesystem as `envrepo build`."""
    from envrepo.build.render import Layout, render
    from envrepo.hashing import hash_environments
    from envrepo.repo.spec import get

    catalog = state.catalog()
    spec = get(catalog, name)
    digest = hash_environments(catalog, [name, *filter(None, [spec.parent])])
    if spec.base.kind == "environment":
        host = _registry_host(catalog.repo, None) or "localhost"
        base = f"{host}/{spec.base.value}:h-{digest[spec.base.value].short}"
    elif spec.base.bootstrap is not None:
        from envrepo.build.bootstrap import image_tag

        base = image_tag(spec.base.bootstrap)
    elif spec.base.kind == "dockerfile":
        base = f"envrepo-base/{spec.name}:h-{digest[name].short}"
    else:
        base = spec.base.value
    folders = () if spec.user_managed or spec.pip is None else ("site-packages", "bin")
    parent = catalog.specs.get(spec.parent or "")
    click.echo(render(spec, base, parent, Layout(folders)), nl=False)
    return ExitCode.OK


@cli.command()
@click.option("--since", metavar="REF", help="Compare with git REF instead of the registry.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "matrix"]), default="table")
@registry_option
@pass_state
def plan(state: State, since: str | None, fmt: str, registry: str | None) -> int:
    """What would be built, wave by wave."""
    import json as json_module

    from envrepo.build import plan as planning
    from envrepo.hashing import hash_environments

    catalog = state.catalog()
    hashes = hash_environments(catalog)
    if since is not None:
        planned = planning.plan(catalog, hashes, None, planning.hashes_at(catalog.repo, since))
    else:
        planned = planning.plan(catalog, hashes, _registry(catalog.repo, registry))
    if fmt == "json":
        emit_json([p.as_json() for p in planned])
    elif fmt == "matrix":
        click.echo(json_module.dumps(planning.matrix(planned), sort_keys=True))
    else:
        table(
            ("WAVE", "NAME", "HASH", "REASON"),
            [[str(p.wave), p.name, p.hash[:12], p.reason] for p in planned],
        )
    return ExitCode.OK


@cli.command()
@names_argument
@click.option("--changed", is_flag=True, help="Build exactly what `envrepo plan` lists.")
@click.option("--push", is_flag=True, help="Push the images and their tags to the registry.")
@registry_option
@pass_state
def build(
    state: State, names: tuple[str, ...], changed: bool, push: bool, registry: str | None
) -> int:
    """Build, test, tag (and push) environments: all, NAMEs, or --changed."""
    from envrepo.build import builder as building
    from envrepo.build import plan as planning
    from envrepo.hashing import hash_environments
    from envrepo.repo import graph
    from envrepo.repo.spec import get

    if names and changed:
        raise click.UsageError("give NAMEs or --changed, not both")
    catalog = state.catalog()
    hashes = hash_environments(catalog)
    target = _registry(catalog.repo, registry)
    if changed:
        chosen = [p.name for p in planning.plan(catalog, hashes, target)]
    else:
        chosen = [get(catalog, n).name for n in names] or list(catalog.specs)
        chosen = sorted(graph.with_ancestors(chosen, catalog.specs))
    from envrepo.validate import validate as check

    # An environment that does not validate (a stale lock included) is never built.
    problems = [p for p in check(catalog, state.opened()[1], set(chosen)) if p.is_error]
    if problems:
        raise EnvrepoError(*problems, code=ExitCode.PROBLEMS)
    root = catalog.repo.root / ".envrepo"
    commit = building.git_commit(catalog.repo.root)
    settings = building.Settings(
        registry=target,
        push=push,
        records=root / "builds",
        logs=root / "logs",
        commit=commit,
        source=os.environ.get("ENVREPO_SOURCE_URL"),
    )
    with build_display() as echo:
        builder = building.Builder(catalog, hashes, settings, echo)
        outcome = building.build_all(builder, chosen)
    rows = [[r.name, r.status, r.digest or "-", r.image] for r in outcome.records]
    if rows:
        table(("NAME", "STATUS", "DIGEST", "IMAGE"), rows)
    for error in outcome.failed:
        for line in error.lines:
            click.echo(line, err=True)
    for name in outcome.skipped:
        click.echo(f"{name}: skipped: an environment it is built on failed", err=True)
    note(
        f"envrepo build: {sum(r.status == 'built' for r in outcome.records)} built, "
        f"{sum(r.status == 'cached' for r in outcome.records)} already there, "
        f"{len(outcome.failed)} failed, {len(outcome.skipped)} skipped"
    )
    return ExitCode.PROBLEMS if outcome.failed or outcome.skipped else ExitCode.OK


@contextmanager
def build_display() -> Iterator[Callable[[str], None]]:
    """On a terminal, one live line with the current step; elsewhere every log line."""
    from envrepo.cli.report import is_terminal

    if not is_terminal() or os.environ.get("CI"):
        yield lambda line: click.echo(line, err=True)
        return
    from rich.console import Console
    from rich.markup import escape

    with Console(stderr=True).status("starting") as status:
        yield lambda line: status.update(escape(line[:150]))


def _log_path() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "envrepo" / "envrepo.log"


def _log_crash() -> str:
    path = _log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"envrepo {__version__} {' '.join(sys.argv)}\n")
            handle.write(traceback.format_exc())
        return str(path)
    except OSError:
        return "nowhere (the log could not be written)"


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors become lines on stderr and an exit code, never a traceback."""
    code: int
    try:
        result = cli.main(args=argv, prog_name="envrepo", standalone_mode=False)
        code = int(result) if isinstance(result, int) else ExitCode.OK
    except EnvrepoError as error:
        for line in error.lines:
            click.echo(line, err=True)
        code = error.code
    except click.exceptions.Exit as done:
        code = done.exit_code
    except click.ClickException as error:
        error.show()
        code = ExitCode.USAGE
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("envrepo: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`envrepo list | head`); keep Python from complaining on exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = ExitCode.OK
    except Exception as error:  # noqa: BLE001 - the last line of defence: log, do not trace
        where = _log_crash()
        click.echo(
            f"envrepo: internal error ({type(error).__name__}: {error}); "
            f"this is a bug, the traceback is in {where}",
            err=True,
        )
        code = 3
    return code


def main() -> NoReturn:
    """The `envrepo` command."""
    code = run()
    if "rattler" in sys.modules:
        # rattler's Rust runtime can crash while Python tears the interpreter down (seen as
        # SIGSEGV or SIGABRT after all output, under load); all work is done and written, so
        # the command leaves without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
