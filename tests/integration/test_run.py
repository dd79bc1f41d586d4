"""Training runs in a real engine: the worked example trains in the curated tutorial
environment, run by a user other than root; the record, run-info, the exit code passed
through, the source folder that the run cannot change, and SIGTERM that leaves nothing."""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from support import PROJECT, Built, envrepo_command

NOBODY = 65534


@pytest.fixture
def shared(built: Built) -> Iterator[Path]:
    """A folder a user other than root can read and write: the built repository and the
    example's source in it."""
    folder = Path(tempfile.mkdtemp(prefix="run-as-user-"))
    try:
        folder.chmod(0o777)
        shutil.copytree(built.root, folder / "repo", ignore=shutil.ignore_patterns(".envrepo"))
        shutil.copytree(PROJECT / "examples/tutorial", folder / "source")
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        yield folder
    finally:
        shutil.rmtree(folder)


def envrepo_as_nobody(
    shared: Path, built: Built, *args: str, wait: bool = True
) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    home = shared / "home"
    home.mkdir(exist_ok=True)
    home.chmod(0o777)
    command = [
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={grp.getgrnam('docker').gr_gid}",
        "--clear-groups",
        envrepo_command(),
        "-C",
        str(shared / "repo"),
        *args,
    ]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "ENVREPO_REGISTRY": built.registry.host,
    }
    if not wait:
        return subprocess.Popen(
            command, cwd=shared, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    return subprocess.run(
        command, cwd=shared, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_a_training_run_writes_its_outputs_as_the_calling_user(built: Built, shared: Path) -> None:
    out = shared / "out"
    done = envrepo_as_nobody(
        shared,
        built,
        "run",
        "envrepo-tutorial",
        "--source-dir",
        str(shared / "source"),
        "--output-dir",
        str(out),
        "--",
        "python",
        "train.py",
    )
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("accuracy 0.9")
    assert (out / "model.pkl").stat().st_uid == NOBODY
    assert json.loads((out / "metrics.json").read_text())["accuracy"] > 0.9
    assert (out / "run.log").read_text() == done.stdout
    record = json.loads((out / "run.json").read_text())
    tutorial = built.record("envrepo-tutorial")
    assert record["environment"]["name"] == "envrepo-tutorial"
    assert record["environment"]["hash"] == tutorial["hash"]
    assert record["environment"]["digest"] == tutorial["digest"]
    assert record["command"] == ["python", "train.py"]
    assert record["exit_code"] == 0 and record["start"] <= record["end"]

    info = envrepo_as_nobody(shared, built, "run-info", str(out))
    assert isinstance(info, subprocess.CompletedProcess)
    assert info.returncode == 0, info.stderr
    assert "environment: envrepo-tutorial (working tree)" in info.stdout
    assert (
        f"envrepo run envrepo-tutorial --source-dir {shared / 'source'} -- python train.py"
        in info.stdout
    )


def test_the_exit_code_variables_and_the_snapshot(built: Built, shared: Path) -> None:
    probe = (
        "import os, sys; print(os.environ['MPLBACKEND'], os.environ['ENVREPO_OUTPUT_DIR'],"
        " os.environ['RUN_KIND'], open('/data/score.py').read()[:3]);"
        " open('train.py', 'w').write('changed'); sys.exit(3)"
    )
    done = envrepo_as_nobody(
        shared,
        built,
        "run",
        "envrepo-tutorial",
        "--source-dir",
        str(shared / "source"),
        "--output-dir",
        str(shared / "out2"),
        "--env",
        "RUN_KIND=probe",
        "--mount",
        f"{shared / 'source'}:/data:ro",
        "--",
        "python",
        "-c",
        probe,
    )
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == 'Agg /envrepo/run/outputs probe """'
    assert (shared / "source/train.py").read_text() == (
        PROJECT / "examples/tutorial/train.py"
    ).read_text()
    assert json.loads((shared / "out2/run.json").read_text())["exit_code"] == 3


def test_sigterm_stops_the_run_and_leaves_no_container(built: Built, shared: Path) -> None:
    image = f"{built.registry.host}/envrepo-tutorial"
    client = docker.from_env()
    process = envrepo_as_nobody(
        shared,
        built,
        "run",
        "envrepo-tutorial",
        "--source-dir",
        str(shared / "source"),
        "--output-dir",
        str(shared / "out3"),
        "--",
        "python",
        "-c",
        "import time; print('started', flush=True); time.sleep(120)",
        wait=False,
    )
    assert isinstance(process, subprocess.Popen)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "started"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    time.sleep(1)
    left = [
        c
        for c in client.containers.list(all=True)
        if c.image.tags and c.image.tags[0].startswith(image)
    ]
    assert left == []
