"""envrepo installed as other repositories install a tool: the release's wheel, its sdist and
its git tag, with pip, `uv tool install` and pipx, each into a place of its own outside this
checkout, and each then run from there (offline: every package comes from the release's
wheelhouse)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import Released, git
from workflows import Called, Runner, load


def installed(command: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        command, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"


def version_of(envrepo: Path, cwd: Path) -> str:
    done = subprocess.run([str(envrepo), "--version"], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("what", ["wheel", "sdist", "git tag"])
@pytest.mark.parametrize("installer", ["pip", "uv tool", "pipx"])
def test_the_release_installs_and_runs(
    released: Released, tmp_path: Path, installer: str, what: str
) -> None:
    source = {
        "wheel": str(released.wheel),
        "sdist": str(released.sdist),
        "git tag": f"git+file://{released.source}@v{released.version}",
    }[what]
    offline = {"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(released.wheelhouse)}
    offline |= released.pip_env()
    binaries = Path(sys.executable).parent
    if installer == "pip":
        venv = tmp_path / "venv"
        installed(["/usr/bin/python3", "-m", "venv", str(venv)], {}, tmp_path)
        installed([str(venv / "bin/pip"), "install", "--quiet", source], offline, tmp_path)
        envrepo = venv / "bin/envrepo"
    elif installer == "uv tool":
        where = {"UV_TOOL_DIR": str(tmp_path / "tools"), "UV_TOOL_BIN_DIR": str(tmp_path / "bin")}
        installed([str(binaries / "uv"), "tool", "install", source], offline | where, tmp_path)
        envrepo = tmp_path / "bin/envrepo"
    else:
        where = {"PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin")}
        installed([str(binaries / "pipx"), "install", source], offline | where, tmp_path)
        envrepo = tmp_path / "bin/envrepo"
    assert version_of(envrepo, tmp_path) == f"envrepo, version {released.version}"
    # What it reads at run time ships inside: a platform's files from the workflow templates
    # and the schemas.
    repo = tmp_path / "company"
    repo.mkdir()
    started = subprocess.run(
        [str(envrepo), "init", "--platform", "--registry", "r.example/acme"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    assert (repo / ".github/workflows/envrepo-main.yml").is_file()
    checked = subprocess.run(
        [str(envrepo), "validate", "-v"], cwd=repo, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    assert "0 errors, 0 warnings in 1 environment" in checked.stderr


def test_the_release_workflow_builds_checks_and_runs_the_tag(
    released: Released, tmp_path: Path
) -> None:
    """The release workflow's build job, step by step, on a clone at the release's tag."""
    checkout = tmp_path / "checkout"
    git(
        "clone",
        "-q",
        "--branch",
        f"v{released.version}",
        str(released.source),
        str(checkout),
        cwd=tmp_path,
    )
    jobs = load(checkout / ".github/workflows/release.yml")["jobs"]
    runner = Runner(
        checkout,
        tmp_path / "runner",
        {**released.pip_env(), "GITHUB_REF_NAME": f"v{released.version}"},
    )
    runner.run(Called(jobs, {}), "dist")
    built = sorted(p.name for p in (checkout / "dist").iterdir())
    assert built == [
        f"envrepo-{released.version}-py3-none-any.whl",
        f"envrepo-{released.version}.tar.gz",
    ]
