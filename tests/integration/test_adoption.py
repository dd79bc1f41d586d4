"""A company's repository adopts envrepo from nothing, as a new platform team would: envrepo
installed from its released wheel outside this checkout, `init --platform` against a registry
with a path that needs credentials (token mode), a root, a base and a child made with the
documented commands and committed through the hooks at the `rev:` init wrote, the workflows
init wrote (and the reusable ones they call) run step by step for a pull request and for main
on two runners, the index published to a bare remote's branch; then a consumer repository pins
the child, builds its own environment on it and runs a script in it without a registry; and a
commit that changes nothing buildable publishes nothing and fails nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from support import Released, forget_images, git, serve_folder, token_mode, write_files
from workflows import Runner, call, load

# The company's registry: a path on the host, as GHCR's ghcr.io/<org> is.
PATH = "acme/ml"
ENVREPO = "envrepo/envrepo"  # the `uses:` owner/name of envrepo's reusable workflows


def committed(root: Path, message: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`git commit` of everything, through the repository's installed pre-commit hooks."""
    git("add", "-A", cwd=root)
    return subprocess.run(
        ["git", "commit", "-qm", message],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=1200,
        check=False,
    )


def test_a_company_repository_from_nothing(
    docker_ready: None, released: Released, tmp_path: Path, pre_commit_home: Path
) -> None:
    started = time.monotonic()
    # Outside any checkout, the wheel says the version its tag gave it.
    shown = released.run("--version", cwd=tmp_path)
    assert shown.out.strip() == f"envrepo, version {released.version}", shown.err
    with token_mode(tmp_path / "registry", "acme-ci", public=(f"{PATH}/",)) as registry:
        host = f"{registry.host}/{PATH}"
        remote = tmp_path / "company.git"
        git("init", "-q", "--bare", "-b", "main", str(remote), cwd=tmp_path)
        company = tmp_path / "company"
        company.mkdir()
        git("init", "-q", "-b", "main", cwd=company)
        git("remote", "add", "origin", str(remote), cwd=company)

        made = released.run(
            "init", "--platform", "--registry", host, "--index-branch", "envs",
            "--hooks-repo", released.source, cwd=company,
        )  # fmt: skip
        assert made.code == 0, made.err
        hooks = yaml.safe_load((company / ".pre-commit-config.yaml").read_text())
        assert hooks["repos"][0]["rev"] == f"v{released.version}"
        assert (company / "environments/bookworm/environment.yaml").is_file()
        linted = subprocess.run(
            [str(Path(sys.executable).parent / "actionlint")],
            cwd=company,
            capture_output=True,
            text=True,
            check=False,
        )
        assert linted.returncode == 0, linted.stdout + linted.stderr

        # The documented commands: scaffold on the default base (the root), add, scaffold a
        # child, a smoke test in the child's tests/.
        for command in (
            ("scaffold", "base", "--description", "the company's base"),
            ("add", "base", "tabulate==0.9.0"),
            ("scaffold", "app", "--base-environment", "base"),
            ("add", "app", "six==1.16.0"),
        ):
            done = released.run(*command, cwd=company)
            assert done.code == 0, (command, done.err)
        write_files(
            company,
            {
                "environments/app/tests/test_imports.py": (
                    "import six, tabulate\nprint(tabulate.tabulate([[six.__version__]]))\n"
                ),
                "README.md": "# acme environments\n",
            },
        )
        # Through the hooks at the rev init wrote: the lock hook writes the locks and fails
        # the commit, so that they are reviewed and added; the second commit passes.
        hook_env = {
            "PRE_COMMIT_HOME": str(pre_commit_home),
            "PRE_COMMIT_COLOR": "never",
            **released.pip_env(),
        }
        pre_commit = Path(sys.executable).parent / "pre-commit"
        subprocess.run([str(pre_commit), "install"], cwd=company, check=True, capture_output=True)
        first = committed(company, "environments: a root, a base and an app", hook_env)
        assert first.returncode == 1, first.stdout + first.stderr
        assert "envrepo lock: 2 locks changed" in first.stdout + first.stderr
        assert (company / "environments/app/requirements.lock").is_file()
        second = committed(company, "environments: a root, a base and an app", hook_env)
        assert second.returncode == 0, second.stdout + second.stderr
        git("push", "-q", "origin", "main", cwd=company)

        # CI: the workflows init wrote, calling envrepo's reusable ones at the same tag.
        secrets = {
            "ENVREPO_REGISTRY_USERNAME": registry.user,
            "ENVREPO_REGISTRY_PASSWORD": registry.password,
        }
        sources = {ENVREPO: released.source}
        homes = tmp_path / "runners"

        def runner(name: str, branch: str = "main") -> Runner:
            checkout = homes / name / "checkout"
            git("clone", "-q", "--branch", branch, str(remote), str(checkout), cwd=tmp_path)
            return Runner(
                checkout,
                homes / name,
                {**released.pip_env(), "XDG_CACHE_HOME": str(homes / name / "cache")},
            )

        def workflow(name: str, checkout: Path) -> dict[str, object]:
            return load(checkout / ".github/workflows" / name)

        pull = runner("pull")
        called = call(
            workflow("envrepo-pull-request.yml", pull.checkout), "environments", pull.checkout,
            sources, secrets=secrets,
        )  # fmt: skip
        pull.run(called, "environments")
        summary = pull.summary.read_text()
        assert "### envrepo plan" in summary and "app" in summary, summary

        def main_branch(tag: str) -> dict[str, str]:
            """The main workflow's jobs, in order, on runners of their own; the plan's waves."""
            plan = runner(f"plan-{tag}")
            called = call(
                workflow("envrepo-main.yml", plan.checkout), "environments", plan.checkout,
                sources, secrets=secrets,
            )  # fmt: skip
            plan.run(called, "plan")
            waves = {
                k: json.loads(v)["include"]
                for k, v in plan.outputs().items()
                if k.startswith("wave")
            }
            artifacts = homes / f"artifacts-{tag}"
            builders = [runner(f"a-{tag}"), runner(f"b-{tag}")]
            turn = 0
            for number in range(len(waves)):
                for entry in waves[f"wave{number}"]:
                    builder = builders[turn % 2]
                    turn += 1
                    builder.run(called, f"wave{number}", {"environment": entry["environment"]})
                    # upload-artifact of the job's .envrepo/, then a fresh job on that runner
                    shutil.copytree(
                        builder.checkout / ".envrepo",
                        artifacts / f"build-{entry['environment']}",
                    )
                    shutil.rmtree(builder.checkout / ".envrepo")
            publisher = runner(f"publish-{tag}")
            for artifact in artifacts.iterdir() if artifacts.is_dir() else []:
                shutil.copytree(artifact, publisher.checkout / "artifacts", dirs_exist_ok=True)
            publisher.run(called, "publish")
            return {k: ",".join(sorted(e["environment"] for e in v)) for k, v in waves.items()}

        waves = main_branch("first")
        assert [w for w in waves.values() if w] == ["bookworm", "base", "app"]
        index = tmp_path / "site" / "index"
        git("clone", "-q", "--branch", "envs", str(remote), str(index), cwd=tmp_path)
        top = json.loads((index / "index.json").read_text())
        assert {n: e["latest"] for n, e in top["environments"].items()} == {
            "bookworm": "1",
            "base": "1",
            "app": "1",
        }
        assert top["envrepo"] == released.version
        published_at = git("rev-parse", "envs", cwd=remote)
        print(f"from nothing to a published index: {time.monotonic() - started:.1f} s")

        # A commit that changes nothing buildable: a plan of nothing, no publish, no failure.
        (company / "README.md").write_text("# acme environments\n\nSee the index.\n")
        third = committed(company, "README: where the index is", hook_env)
        assert third.returncode == 0, third.stdout + third.stderr
        git("push", "-q", "origin", "main", cwd=company)
        assert not any(main_branch("third").values())
        assert git("rev-parse", "envs", cwd=remote) == published_at
        quiet = runner("pull-third")
        caller = workflow("envrepo-pull-request.yml", quiet.checkout)
        quiet.run(
            call(caller, "environments", quiet.checkout, sources, secrets=secrets), "environments"
        )

        # A consumer: pins the app, builds an environment of its own on it, runs a script in
        # it; no registry of its own.
        with serve_folder(tmp_path / "site") as url:
            consumer = tmp_path / "consumer"
            consumer.mkdir()
            git("init", "-q", "-b", "main", cwd=consumer)
            started_consumer = released.run(
                "init", "--consumer", "--index", f"{url}/index", cwd=consumer
            )
            assert started_consumer.code == 0, started_consumer.err
            pinned = released.run("pin", "app", cwd=consumer)
            assert pinned.code == 0, pinned.err
            write_files(
                consumer,
                {
                    "environments/report/environment.yaml": (
                        "name: report\nbase:\n  published:\n    environment: app@1\n"
                        f'    index: {url}/index\npython: "3.11"\n'
                    ),
                    "report.py": (
                        "import six, tabulate\n"
                        "print(tabulate.tabulate([['six', six.__version__]]))\n"
                    ),
                },
            )
            for command in (("lock", "report"), ("build", "report")):
                done = released.run(*command, cwd=consumer)
                assert done.code == 0, (command, done.out, done.err[-3000:])
            ran = released.run(
                "run", "report", "--output-dir", tmp_path / "out", "--", "python", "report.py",
                cwd=consumer,
            )  # fmt: skip
            assert ran.code == 0, ran.err[-3000:]
            assert "six  1.16.0" in ran.out
            info = released.run("run-info", tmp_path / "out", cwd=consumer)
            assert "by digest" not in info.out  # a local image has no digest to name
            assert "on this machine only: docker run --rm envrepo.local/report:h-" in info.out
            forget_images("envrepo.local")
