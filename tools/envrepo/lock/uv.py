"""uv, the one resolver and installer envrepo runs on this machine: where it is, its version,
its commands for a target (an image's python and platform, never this machine's), and what
it says went wrong, in one line."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import metadata
from pathlib import Path

from envrepo.repo.platforms import Target

QUIET = ["--quiet", "--color", "never"]


@cache
def binary() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


@cache
def version() -> str:
    """`uv X.Y.Z`, from the package that ships the binary: no process is started for it."""
    return f"uv {metadata.version('uv')}"


def compile_command(
    inputs: Sequence[str], output: Path, options: Sequence[str], *, lists_sources: bool = False
) -> list[str]:
    """`uv pip compile` of `inputs` into `output`. It never builds a source distribution, so
    no package's code runs here; `lists_sources` is for exact pins read with --no-deps, where
    uv reads no package's metadata and the source distributions are what is asked for."""
    command = [binary(), "pip", "compile", *inputs, "-o", str(output), *options]
    return [*command, *([] if lists_sources else ["--no-build"]), *QUIET]


def install_command(folder: Path, target: Target, lock: Path) -> list[str]:
    """uv installing the entries of `lock` (hash-checked wheels, no resolution) into `folder`
    for `target`."""
    return [
        binary(),
        "pip",
        "install",
        "--target",
        str(folder),
        *target.uv_options(),
        "--only-binary",
        ":all:",
        "--require-hashes",
        "--no-deps",
        *QUIET,
        "-r",
        str(lock),
    ]


def error_line(stderr: str) -> str:
    """What uv said went wrong, in one line: its boxes and hints left out."""
    lines = [line.strip(" ╰─▶×│") for line in stderr.splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith("hint:"))
    return text.removeprefix("error: ").strip() or "uv said nothing"
