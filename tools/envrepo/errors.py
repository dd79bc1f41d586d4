"""The one error type a person sees, and problems reported as data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

Severity = Literal["error", "warning"]


class ExitCode(IntEnum):
    OK = 0
    PROBLEMS = 1
    USAGE = 2
    INTERNAL = 3  # a bug in envrepo: the traceback goes to the log, not the screen
    INTERRUPTED = 130


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
