"""The envrepo command line: one module per command (or small group), each parsing its
options, calling one stage and reporting the result. A command imports its stage when it
runs, so that `envrepo --help` and the quick commands start fast."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import NoReturn

import click

from envrepo import __version__
from envrepo.cli.options import State
from envrepo.errors import (
    EnvrepoError,
    ExitCode,
    Terminated,
    internal_error,
    terminate_like_ctrl_c,
)

# Each command by the module that holds it: a command's module is imported only when that
# command runs (or help lists them all).
COMMANDS = {
    "validate": "validate:validate",
    "hash": "hashes:hash_command",
    "list": "inventory:list_command",
    "show": "inventory:show",
    "lock": "lock:lock",
    "scaffold": "author:scaffold",
    "add": "author:add",
    "render": "build:render_command",
    "plan": "build:plan",
    "build": "build:build",
    "publish": "publish:publish",
    "deprecate": "publish:deprecate",
    "diff": "publish:diff",
    "pin": "consume:pin",
    "resolve": "consume:resolve",
    "download": "consume:download",
    "init": "init:init",
    "run": "run:run",
    "run-info": "run:run_info",
    "serve": "serve:serve",
    "model": "model:model",
}


class Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, name = COMMANDS[cmd_name].partition(":")
        command: click.Command = getattr(import_module(f"envrepo.cli.{module}"), name)
        return command


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
    except (KeyboardInterrupt, click.exceptions.Abort) as stop:
        # click turns a KeyboardInterrupt (Terminated included) into Abort.
        if isinstance(stop, Terminated) or isinstance(stop.__context__, Terminated):
            click.echo("envrepo: terminated", err=True)
            code = ExitCode.TERMINATED
        else:
            click.echo("envrepo: interrupted", err=True)
            code = ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`envrepo list | head`); keep Python from complaining on exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = ExitCode.OK
    except Exception as error:  # noqa: BLE001 - the last line of defence: log, do not trace
        click.echo(f"envrepo: {internal_error(error)}", err=True)
        code = ExitCode.INTERNAL
    return code


def main() -> NoReturn:
    """The `envrepo` command."""
    terminate_like_ctrl_c()
    code = run()
    if "rattler" in sys.modules:
        # rattler's Rust runtime can crash while Python tears the interpreter down (seen as
        # SIGSEGV or SIGABRT after all output, under load); all work is done and written, so
        # the command leaves without that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
