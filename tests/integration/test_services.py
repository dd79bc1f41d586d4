"""How the project's setup script gets a Docker Engine, decided by what answers and what is
installed, never by which client is on PATH: a daemon that answers is used; a client without
a daemon gets the installed dockerd started, or Debian's docker.io installed when there is
none; no client at all is the same. Each case is the real script on this machine, with PATH,
DOCKER_HOST and the folders searched for dockerd set as such a machine would have them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import PROJECT


def decision(env: dict[str, str]) -> str:
    done = subprocess.run(
        ["/bin/bash", str(PROJECT / "scripts/services.sh"), "docker-decision"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_daemon_that_answers_is_used(docker_ready: None) -> None:
    assert decision(dict(os.environ)) == "use"


@pytest.mark.parametrize(("dockerd", "expected"), [(True, "start"), (False, "install")])
def test_a_client_without_a_daemon_starts_or_installs_one(
    docker_ready: None, tmp_path: Path, dockerd: bool, expected: str
) -> None:
    client = shutil.which("docker")
    assert client is not None
    installed = shutil.which("dockerd", path="/usr/local/sbin:/usr/sbin:/usr/bin")
    assert installed is not None  # the session's own engine
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(client)
    (bin_dir / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    if dockerd:
        (bin_dir / "dockerd").symlink_to(installed)
    env = {
        "PATH": str(bin_dir),
        "ENVREPO_DOCKERD_PATH": "",
        # A client whose daemon is not there: the socket of a daemon never started.
        "DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}",
        "HOME": str(tmp_path),
    }
    assert decision(env) == expected


def test_no_client_installs_docker_io(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    env = {"PATH": str(bin_dir), "ENVREPO_DOCKERD_PATH": "", "HOME": str(tmp_path)}
    assert decision(env) == "install"
