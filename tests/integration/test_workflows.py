"""What CI runs is what these tests run: the steps of the workflow files, read from them and
run in order on this machine. A pull request's job builds what changed without pushing and
writes its summary; on main, the plan's waves run on two runners (two clones with caches of
their own) that hand their build records over as files, and the publish job merges them into
the index on the gh-pages branch."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from support import PROJECT, Built, commit, git, write_files

EXTRA = (
    "name: envrepo-extra\ndescription: a second environment of the first wave\ncurated: true\n"
    'base:\n  environment: envrepo-minimal\npython: "3.11"\n'
)


def workflow(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((PROJECT / ".github/workflows" / name).read_text())
    return document


def runner(source: Path, folder: Path) -> Path:
    """A runner's checkout of `source`, with the project's .venv as its setup made it (the
    stamp of the same pyproject.toml lets scripts/setup.sh keep it)."""
    git("clone", "-q", str(source), str(folder), cwd=source)
    (folder / ".venv").symlink_to(PROJECT / ".venv")
    return folder


def run_steps(
    job: dict[str, Any], checkout: Path, env: dict[str, str], matrix: dict[str, str] | None = None
) -> None:
    """A job's steps on this machine: `run:` steps in bash as GitHub runs them (root here, so
    sudo is dropped), `uses:` steps as what they stand for (the checkout is `checkout`)."""
    for step in job["steps"]:
        if "run" not in step:
            assert step["uses"].split("@")[0] in {
                "actions/checkout",
                "actions/upload-artifact",
                "actions/download-artifact",
            }, step
            continue
        command = step["run"]
        for key, value in (matrix or {}).items():
            command = command.replace(f"${{{{ matrix.{key} }}}}", value)
        assert "${{" not in command, command
        command = re.sub(r"\bsudo (-E )?", "", command)
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", command],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"


def test_the_workflows_steps_run_here(built: Built, tmp_path: Path) -> None:
    # The repository as a pull request changes it: the tutorial changes, an environment is new.
    origin = runner(PROJECT, tmp_path / "origin")
    (origin / ".venv").unlink()
    spec = origin / "environments/envrepo-tutorial/environment.yaml"
    spec.write_text(spec.read_text().replace('OMP_NUM_THREADS: "1"', 'OMP_NUM_THREADS: "2"'))
    write_files(origin, {"environments/envrepo-extra/environment.yaml": EXTRA})
    commit(origin, "tutorial: two threads; an extra environment")

    def env_for(name: str) -> dict[str, str]:
        home = tmp_path / f"home-{name}"
        home.mkdir(exist_ok=True)
        return {
            **os.environ,
            "ENVREPO_REGISTRY": built.registry.host,
            "XDG_CACHE_HOME": str(tmp_path / f"cache-{name}"),
            "GITHUB_OUTPUT": str(home / "output"),
            "GITHUB_STEP_SUMMARY": str(home / "summary.md"),
        }

    # The pull request: build without push, and the summary.
    pull = runner(origin, tmp_path / "pull")
    run_steps(workflow("pr.yml")["jobs"]["environments"], pull, env_for("a"))
    summary = Path(env_for("a")["GITHUB_STEP_SUMMARY"]).read_text()
    print(summary)  # what the pull request's job summary shows (pytest -s)
    assert "### envrepo plan" in summary and "envrepo-extra" in summary
    assert "**envrepo-tutorial** (against nothing published yet)" in summary
    assert tags(built, "envrepo-extra") == []  # a pull request pushes nothing

    # main: the plan, its waves on two runners, the records handed over, the publish.
    jobs = workflow("build.yml")["jobs"]
    plan = runner(origin, tmp_path / "plan")
    run_steps(jobs["plan"], plan, env_for("plan"))
    outputs = dict(
        line.split("=", 1)
        for line in Path(env_for("plan")["GITHUB_OUTPUT"]).read_text().splitlines()
    )
    waves = [json.loads(outputs[f"wave{n}"])["include"] for n in range(4)]
    assert [sorted(e["environment"] for e in wave) for wave in waves if wave] == [
        ["envrepo-extra", "envrepo-tutorial"]
    ]
    artifacts = tmp_path / "artifacts"
    runners = {
        "a": runner(origin, tmp_path / "runner-a"),
        "b": runner(origin, tmp_path / "runner-b"),
    }
    for number, wave in enumerate(waves):
        for turn, entry in enumerate(sorted(wave, key=lambda e: e["environment"])):
            name = "ab"[turn % 2]
            checkout = runners[name]
            run_steps(
                jobs[f"wave{number}"],
                checkout,
                env_for(name),
                {"environment": entry["environment"]},
            )
            # upload-artifact: the job's .envrepo/ under the artifact's name
            shutil.copytree(
                checkout / ".envrepo",
                artifacts / f"build-{entry['environment']}",
                ignore=shutil.ignore_patterns("publish"),
            )
            shutil.rmtree(checkout / ".envrepo")
    publisher = runner(origin, tmp_path / "publisher")
    # download-artifact, merge-multiple: every artifact's files in one folder
    for artifact in artifacts.iterdir():
        shutil.copytree(artifact, publisher / "artifacts", dirs_exist_ok=True)
    run_steps(jobs["publish"], publisher, env_for("publisher"))

    index = tmp_path / "index"
    git("clone", "-q", "--branch", "gh-pages", str(origin), str(index), cwd=tmp_path)
    top = json.loads((index / "index.json").read_text())["environments"]
    # A wave's build takes what its environment stands on with it: all four are published.
    assert {name: entry["latest"] for name, entry in top.items()} == {
        "envrepo-bookworm": "1",
        "envrepo-extra": "1",
        "envrepo-minimal": "1",
        "envrepo-tutorial": "1",
    }
    assert {"1", "latest"} <= set(tags(built, "envrepo-extra"))


def tags(built: Built, name: str) -> list[str]:
    from support import tags_of

    return tags_of(built.registry.host, name)
