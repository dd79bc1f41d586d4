"""The one error type a person sees, and problems reported as data."""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


class ExitCode(IntEnum):
    OK = 0
    PROBLEMS = 1
    USAGE = 2
    INTERNAL = 3  # a bug in envrepo: the traceback goes to the log, not the screen
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM, as CI cancels a job


@dataclass(frozen=True, order=True)
class Problem:
    """One finding of a check, printed as `path: field: message`."""

    path: str
    field: str
    message: str
    severity: Severity = "error"

    def line(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        where = f"{self.path}: {self.field}: " if self.field else f"{self.path}: "
        return f"{where}{prefix}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class EnvrepoError(Exception):
    """A user error: its lines are printed as they are and the process exits with `code`.

    Anything else that escapes is a bug in envrepo and is logged with its traceback.
    """

    def __init__(self, *problems: Problem | str, code: ExitCode = ExitCode.USAGE) -> None:
        self.problems = tuple(p for p in problems if isinstance(p, Problem))
        self.lines = tuple(p.line() if isinstance(p, Problem) else p for p in problems)
        super().__init__("\n".join(self.lines))
        self.code = code


def fail(path: str, field: str, message: str, code: ExitCode = ExitCode.USAGE) -> EnvrepoError:
    return EnvrepoError(Problem(path, field, message), code=code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the process is, so that every cleanup that Ctrl-C runs (temporary
    folders, containers, child processes, untagged images) runs for it too."""


def terminate_like_ctrl_c() -> None:
    def raise_terminated(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, raise_terminated)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the block to end, then act as they would have: for a call
    whose answer must not be lost, such as the ID of a container the daemon is making (it
    would be made all the same, and nobody would know to remove it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda n, _: arrived.append(n)) for number in wanted}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if arrived:
            raise KeyboardInterrupt if arrived[0] == signal.SIGINT else Terminated


def internal_error(error: Exception) -> str:
    """The line a bug in envrepo is told by; its traceback goes to the log file, whose path
    the line names."""
    from envrepo import __version__

    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(state_home) / "envrepo" / "envrepo.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(f"envrepo {__version__} {' '.join(sys.argv)}\n")
            handle.write("".join(traceback.format_exception(error)))
        where = str(path)
    except OSError:
        where = "nowhere (the log could not be written)"
    return (
        f"internal error ({type(error).__name__}: {error}); "
        f"this is a bug, the traceback is in {where}"
    )
