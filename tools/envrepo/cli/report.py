"""How results reach a person or a machine: tables on a terminal, plain lines otherwise."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import click


def is_terminal() -> bool:
    return sys.stdout.isatty()


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A rich table on a terminal; aligned plain columns when piped, so that grep and cut work."""
    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        view = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            view.add_row(*row)
        Console().print(view)
        return
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        click.echo("  ".join(cells).rstrip())


def fields(pairs: Sequence[tuple[str, str]]) -> None:
    width = max(len(key) for key, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key + ':':<{width + 1}} {value}")


def note(message: str) -> None:
    click.echo(message, err=True)


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


@contextmanager
def progress(total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar on a terminal outside CI; a plain line per step anywhere else."""
    if not is_terminal() or os.environ.get("CI"):
        done = 0

        def line(name: str) -> None:
            nonlocal done
            done += 1
            print(f"locking {name} ({done}/{total})", flush=True)

        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("locking {task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    ) as bar:
        task = bar.add_task("", total=total)

        def advance(name: str) -> None:
            bar.update(task, description=name, advance=1)

        yield advance


@contextmanager
def live_log() -> Iterator[Callable[[str], None]]:
    """On a terminal outside CI, one live line with the current step; elsewhere every line."""
    if not is_terminal() or os.environ.get("CI"):
        yield lambda line: click.echo(line, err=True)
        return
    from rich.console import Console
    from rich.markup import escape

    with Console(stderr=True).status("starting") as status:
        yield lambda line: status.update(escape(line[:150]))


def changes_lines(changes: Mapping[str, Mapping[str, list[dict[str, str]]]]) -> list[str]:
    """One line per changed package: `  pip   patch   pandas 3.1.1 → 3.1.0`."""
    return [
        f"  {ecosystem:<5} {kind:<7} {item['name']} "
        + " → ".join(v for v in (item.get("from"), item.get("to")) if v)
        for ecosystem, kinds in changes.items()
        for kind, items in kinds.items()
        for item in items
    ]
