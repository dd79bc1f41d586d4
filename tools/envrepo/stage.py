"""The build context: the locked packages installed on the host for the image's target.

uv installs the lock's files, hash-checked, from its content-addressed cache (shared by
every environment and run) into a folder that the Dockerfile copies; the container never
reaches a package index, and no wheel file goes into the context.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from envrepo import lock
from envrepo.errors import EnvrepoError, Problem
from envrepo.lock_pip import PLATFORM_TAGS, uv
from envrepo.render import ENV_PREFIX
from envrepo.spec import Spec


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3]).removeprefix("error: ") if lines else "no output"


def _rewrite_shebangs(folder: Path) -> None:
    # Console scripts name the host interpreter uv ran for; in the image it is the venv's.
    for script in folder.iterdir():
        if not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
            script.write_bytes(f"#!{ENV_PREFIX}/bin/python\n".encode() + rest)


def stage(spec: Spec, context: Path) -> Path | None:
    """Install `spec`'s locked packages into a folder under `context` (uv's --target layout:
    packages, bin/, share/); None when it installs nothing."""
    pip_lock = lock.pip_lock(spec)
    if pip_lock is None or spec.user_managed:
        return None
    lock.require(spec, "pip", pip_lock)
    target = context / "target"
    command = [
        uv(),
        "pip",
        "install",
        "--target",
        str(target),
        "--python-version",
        spec.python,
        "--python-platform",
        PLATFORM_TAGS[spec.platforms[0]],
        "--only-binary",
        ":all:",
        "--require-hashes",
        "--no-deps",
        "--quiet",
        "--color",
        "never",
        "-r",
        str(pip_lock),
    ]
    if spec.wheels is not None:
        command += ["--find-links", str(spec.folder / spec.wheels)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvrepoError(
            Problem(
                f"{spec.display}/{pip_lock.name}",
                "",
                (
                    f"the locked files cannot be installed: {_first_line(done.stderr)}; "
                    f"run envrepo lock {spec.name} --all if the lock is out of date"
                ),
            )
        )
    if (target / "bin").is_dir():
        _rewrite_shebangs(target / "bin")
    return target
