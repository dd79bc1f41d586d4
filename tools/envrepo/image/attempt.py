"""One build of one environment: its log, the time each step took, and the image it loaded or
pulled that no tag holds yet, which is removed should the build fail or stop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from envrepo.engine.docker import Docker, Log


@dataclass
class Attempt:
    name: str
    log_path: Path
    echo: Log
    durations: dict[str, float] = field(default_factory=dict)
    untagged: str | None = None
    _file: TextIO | None = None

    def log(self, line: str) -> None:
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        self.echo(f"{self.name} | {line}")

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.durations[step] = round(time.monotonic() - started, 2)


@contextmanager
def attempt(engine: Docker, name: str, log_path: Path, echo: Log) -> Iterator[Attempt]:
    """An attempt logging to `log_path`; what it leaves untagged is removed if it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as handle:
        current = Attempt(name, log_path, echo, _file=handle)
        try:
            yield current
        except BaseException:
            if current.untagged is not None:
                engine.forget(current.untagged)
            raise
