"""The hooks as another repository uses them: real pre-commit, pointed at this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from support import PROJECT, RepoMaker, git, write_files

HOOK_IDS = ("envrepo-validate", "envrepo-lock")


def test_this_repository_runs_the_hooks_it_publishes() -> None:
    published = {
        h["id"]: h for h in yaml.safe_load((PROJECT / ".pre-commit-hooks.yaml").read_text())
    }
    config = yaml.safe_load((PROJECT / ".pre-commit-config.yaml").read_text())
    local = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert set(HOOK_IDS) <= set(published)
    for hook_id in HOOK_IDS:
        for key in ("entry", "files", "pass_filenames"):
            assert local[hook_id][key] == published[hook_id][key], (hook_id, key)


def run_pre_commit(
    root: Path, home: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    pre_commit = Path(sys.executable).parent / "pre-commit"
    env = {
        **os.environ,
        **(extra_env or {}),
        "PRE_COMMIT_HOME": str(home),
        "PRE_COMMIT_COLOR": "never",
    }
    # The hooks must come from pre-commit's own environment, not from the test's PATH.
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if Path(p) != Path(sys.executable).parent
    )
    return subprocess.run(
        [str(pre_commit), "run", "--all-files"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def test_another_repository_uses_the_hooks_by_repo_and_rev(
    make_repo: RepoMaker, project_rev: str, pre_commit_home: Path
) -> None:
    root = make_repo("reserved_prefix: team-\n")
    config = {
        "repos": [
            {
                "repo": str(PROJECT),
                "rev": project_rev,
                "hooks": [{"id": i} for i in HOOK_IDS],
            }
        ]
    }
    write_files(
        root,
        {
            ".pre-commit-config.yaml": yaml.safe_dump(config),
            "environments/app/environment.yaml": (
                'name: app\nbase:\n  image: python:3.11-slim@sha256:abababababababababababababababababababababababababababababababab\npython: "3.11"\n'
            ),
        },
    )
    git("add", "-A", cwd=root)
    good = run_pre_commit(root, pre_commit_home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "envrepo validate" in good.stdout and "Passed" in good.stdout

    write_files(
        root,
        {
            "environments/bad/environment.yaml": "name: team-bad\nbase:\n  image: x\npython: 3.10\n",
            "environments/app/requirements.txt": "numpy==1.26.4\n",
        },
    )
    (root / "environments/app/environment.yaml").write_text(
        'name: app\nbase:\n  image: python:3.11-slim@sha256:abababababababababababababababababababababababababababababababab\npython: "3.11"\npip: requirements.txt\n'
    )
    git("add", "-A", cwd=root)
    bad = run_pre_commit(root, pre_commit_home)
    assert bad.returncode == 1
    assert (
        "environments/bad/environment.yaml: python: 3.10 is read by YAML as the number 3.1; "
        'quote it: "3.10"'
    ) in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
