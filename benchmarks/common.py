"""What the benchmark scripts share: timing a command, a copy of the curated tree to work on,
the tests' registries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The tests' registries (tests/registries.py): the real distribution registry, started from
# the project's config template, plain or in token mode.
sys.path.insert(0, str(PROJECT / "tests"))
# A user's install has its bytecode written (pip compiles a wheel's modules); a shell that
# sets PYTHONDONTWRITEBYTECODE would have every envrepo start compile its sources instead.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
subprocess.run([str(BIN / "envrepo"), "--version"], capture_output=True, check=True)


def run_timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of `command`; the benchmark stops with its output when it fails. Each run
    starts with the disk written back, so that none pays for what ran before it."""
    os.sync()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr[-3000:]}"
        )
    return elapsed


def curated_copy(target: Path) -> Path:
    """This repository's config and environments in a git repository of their own."""
    target.mkdir(parents=True)
    shutil.copy(PROJECT / "envrepo.yaml", target)
    shutil.copytree(PROJECT / "environments", target / "environments")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=target, check=True)
    return target
