"""What CI runs is what these tests run: the steps of this repository's workflow files and the
reusable ones they call, read from them and run in order on this machine. A pull request's job builds what changed without pushing and
writes its summary; on main, the plan's waves run on two runners (two clones with caches of
their own) that hand their build records over as files, and the publish job merges them into
the index on the gh-pages branch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support import PROJECT, Built, Released, commit, git, write_files
from workflows import Runner, call, load

EXTRA = (
    "name: envrepo-extra\ndescription: a second environment of the first wave\ncurated: true\n"
    'base:\n  environment: envrepo-minimal\npython: "3.11"\n'
)


def runner(source: Path, home: Path, released: Released) -> Runner:
    """A runner: its own clone of `source`, home and caches; pip installs from the release's
    wheelhouse (envrepo itself from the checkout, as this repository's workflows ask)."""
    checkout = home / "checkout"
    git("clone", "-q", str(source), str(checkout), cwd=source)
    env = {**released.pip_env(), "XDG_CACHE_HOME": str(home / "cache")}
    return Runner(checkout, home, env)


def test_the_workflows_steps_run_here(built: Built, released: Released, tmp_path: Path) -> None:
    # The repository as a pull request changes it: the tutorial changes, an environment is new.
    origin = tmp_path / "origin"
    git("clone", "-q", str(PROJECT), str(origin), cwd=tmp_path)
    spec = origin / "environments/envrepo-tutorial/environment.yaml"
    spec.write_text(spec.read_text().replace('OMP_NUM_THREADS: "1"', 'OMP_NUM_THREADS: "2"'))
    write_files(origin, {"environments/envrepo-extra/environment.yaml": EXTRA})
    commit(origin, "tutorial: two threads; an extra environment")
    variables = {"ENVREPO_REGISTRY": built.registry.host}

    def make(name: str) -> Runner:
        return runner(origin, tmp_path / name, released)

    # The pull request: build without push, and the summary.
    pull = make("pull")
    caller = load(pull.checkout / ".github/workflows/pr.yml")
    assert set(caller[True]) == {"pull_request"}  # not on pushes to main as well
    called = call(caller, "environments", pull.checkout, variables=variables)
    pull.run(called, "environments")
    summary = pull.summary.read_text()
    print(summary)  # what the pull request's job summary shows (pytest -s)
    assert "### envrepo plan" in summary and "envrepo-extra" in summary
    assert "**envrepo-tutorial** (against nothing published yet)" in summary
    assert tags(built, "envrepo-extra") == []  # a pull request pushes nothing

    # main: the plan, its waves on two runners, the records handed over, the publish.
    plan = make("plan")
    called = call(
        load(plan.checkout / ".github/workflows/build.yml"), "environments", plan.checkout,
        variables=variables,
    )  # fmt: skip
    plan.run(called, "plan")
    outputs = plan.outputs()
    waves = [json.loads(outputs[f"wave{n}"])["include"] for n in range(8)]
    assert [sorted(e["environment"] for e in wave) for wave in waves if wave] == [
        ["envrepo-extra", "envrepo-tutorial"]
    ]
    artifacts = tmp_path / "artifacts"
    runners = {"a": make("runner-a"), "b": make("runner-b")}
    for number, wave in enumerate(waves):
        for turn, entry in enumerate(sorted(wave, key=lambda e: e["environment"])):
            checkout = runners["ab"[turn % 2]]
            checkout.run(called, f"wave{number}", {"environment": entry["environment"]})
            # upload-artifact: the job's .envrepo/ under the artifact's name
            shutil.copytree(
                checkout.checkout / ".envrepo",
                artifacts / f"build-{entry['environment']}",
                ignore=shutil.ignore_patterns("publish"),
            )
            shutil.rmtree(checkout.checkout / ".envrepo")
    publisher = make("publisher")
    # download-artifact, merge-multiple: every artifact's files in one folder
    for artifact in artifacts.iterdir():
        shutil.copytree(artifact, publisher.checkout / "artifacts", dirs_exist_ok=True)
    publisher.run(called, "publish")

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
