"""The pip locker: uv resolves an input for the environment's target, with hashes."""

from __future__ import annotations

import subprocess
from functools import cache

from envrepo.errors import EnvrepoError, ExitCode, Problem
from envrepo.lock import LockInput
from envrepo.spec import Spec

# The oldest glibc the curated images and most wheels agree on; the resolution must be for
# the image, never for the machine that happens to run `envrepo lock`.
PLATFORM_TAGS = {
    "linux/amd64": "x86_64-manylinux_2_28",
    "linux/arm64": "aarch64-manylinux_2_28",
}


@cache
def uv() -> str:
    from uv import find_uv_bin

    return find_uv_bin()


@cache
def tool_version() -> str:
    done = subprocess.run([uv(), "--version"], capture_output=True, text=True, check=True)
    return done.stdout.split("(")[0].strip()


def _target_options(spec: Spec) -> list[str]:
    options = ["--python-version", spec.python]
    if len(spec.platforms) == 1:
        return [*options, "--python-platform", PLATFORM_TAGS[spec.platforms[0]]]
    # One resolution that holds for every platform, with markers where they differ.
    return [*options, "--universal"]


def resolve(spec: Spec, item: LockInput) -> str:
    """The lock body for `item`: exact versions and sha256 hashes of every distribution."""
    command = [
        uv(),
        "pip",
        "compile",
        item.source.relative_to(spec.folder).as_posix(),
        *_target_options(spec),
        "--generate-hashes",
        "--no-header",
        "--quiet",
        "--color",
        "never",
    ]
    done = subprocess.run(command, cwd=spec.folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (
            " ".join(
                line.strip()
                for line in done.stderr.splitlines()
                if line.strip() and not line.startswith("  ╰")
            )
            .removeprefix("error: ")
            .removeprefix("×")
            .strip()
        )
        raise EnvrepoError(
            Problem(
                f"{spec.display}/{item.source.name}",
                item.field,
                (
                    f"cannot be resolved for python {spec.python} on {', '.join(spec.platforms)}: "
                    f"{reason}; fix the requirement"
                ),
            ),
            code=ExitCode.PROBLEMS,
        )
    return done.stdout
