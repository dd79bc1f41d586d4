"""Bytecode for the image's interpreter, made while a package layer is made: `.pyc` files next
to the staged sources, so that the image imports without compiling, as after a pip install,
and a package is compiled once, when its layer is made, never again on a rebuild.

The files are compiled by an interpreter of the same version and implementation as the
image's: the host's when it is one (no container to start), else the base image's own,
network off. Their headers carry mtime 0, the mtime every file has in envrepo's layers, so
Python trusts them and a file edited in a running container is still compiled afresh.
Packages' own test suites (folders named `tests`) are left as sources: nothing imports them
but a run of that suite, and their bytecode would add a tenth to the image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from envrepo.engine.docker import Docker
from envrepo.errors import EnvrepoError
from envrepo.image.checks import Python

NOT_COMPILED = "tests"
POLICY = "timestamp mtime 0; tests/ not compiled"  # part of a package layer's cache key
STAGE_MOUNT = "/envrepo-stage"

# Runs under the image's interpreter: compiles (staged path, path in the image) pairs.
DRIVER = r"""
import importlib.util, json, marshal, multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor

def compile_one(job):
    source, shown = job
    try:
        with open(source, "rb") as handle:
            data = handle.read()
        code = compile(data, shown, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return 0
    target = importlib.util.cache_from_source(source)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    size = (len(data) & 0xFFFFFFFF).to_bytes(4, "little")
    with open(target, "wb") as handle:
        handle.write(importlib.util.MAGIC_NUMBER + bytes(8) + size + marshal.dumps(code))
    return 1

root, listing = sys.argv[1], sys.argv[2]
with open(listing, encoding="utf-8") as handle:
    jobs = [(os.path.join(root, relative), shown) for relative, shown in json.load(handle)]
if len(jobs) < 100 or (os.cpu_count() or 1) < 2:
    print(sum(map(compile_one, jobs)))
else:
    with ProcessPoolExecutor(mp_context=multiprocessing.get_context("fork")) as pool:
        print(sum(pool.map(compile_one, jobs, chunksize=64)))
"""


@dataclass(frozen=True)
class Job:
    """One source to compile: its path under the staging folder and its path in the image."""

    staged: str
    shown: str


def wanted(relative: str) -> bool:
    """Whether a file of a package (path inside site-packages) gets bytecode."""
    parts = PurePosixPath(relative).parts
    return relative.endswith(".py") and NOT_COMPILED not in parts[:-1]


def pyc_path(relative: str, cache_tag: str) -> str:
    """Where the interpreter with `cache_tag` looks for the bytecode of `relative`."""
    path = PurePosixPath(relative)
    return str(path.parent / "__pycache__" / f"{path.stem}.{cache_tag}.pyc")


def _run_driver(staging: Path, jobs: Sequence[Job], run: Callable[[Path], tuple[int, str]]) -> None:
    """Hand `jobs` to the driver as a list file under `staging`; `run(list file)` runs it."""
    listing = staging / "envrepo-compile.json"
    listing.write_text(json.dumps([[job.staged, job.shown] for job in jobs]), encoding="utf-8")
    try:
        code, output = run(listing)
    finally:
        listing.unlink(missing_ok=True)
    if code != 0:
        last = (output.strip().splitlines() or ["no output"])[-1]
        raise EnvrepoError(f"compiling the packages' bytecode failed: {last}")


def compile_on_host(staging: Path, jobs: Sequence[Job]) -> None:
    """Compile with the interpreter running envrepo (the image's version and implementation)."""

    def run(listing: Path) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-I", "-c", DRIVER, str(staging), str(listing)],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    _run_driver(staging, jobs, run)


def compile_in_image(
    engine: Docker, image: str, python: Python, staging: Path, jobs: Sequence[Job]
) -> None:
    """Compile with the base image's own interpreter, network off, as the host's user."""

    def run(listing: Path) -> tuple[int, str]:
        return engine.run(
            image,
            [python.path, "-I", "-c", DRIVER, STAGE_MOUNT, f"{STAGE_MOUNT}/{listing.name}"],
            {str(staging): {"bind": STAGE_MOUNT, "mode": "rw"}},
            user=f"{os.getuid()}:{os.getgid()}",
        )

    _run_driver(staging, jobs, run)


def compile_staged(
    engine: Docker, image: str, python: Python, staging: Path, jobs: Sequence[Job]
) -> None:
    """Write the bytecode of `jobs` next to their sources under `staging`."""
    if not jobs:
        return
    if python.cache_tag == sys.implementation.cache_tag:
        compile_on_host(staging, jobs)
    else:
        compile_in_image(engine, image, python, staging, jobs)
