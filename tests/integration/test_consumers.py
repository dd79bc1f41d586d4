"""Another repository uses the published index: two real git repositories, the platform's
index served over HTTP on loopback, pins written, checked and moved, an environment of the
consumer's own built on a published one, the pinned image run by digest, a registry tampered
with, a snapshot doctored, a version deprecated, and the pin-check hook in real pre-commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from test_precommit import run_pre_commit

from envrepo.engine.registry import connect
from support import (
    PROJECT,
    Built,
    commit,
    git,
    manifest_digest,
    run_envrepo,
    serve_folder,
    write_files,
)

TUTORIAL = "envrepo-tutorial"


@dataclass
class Platform:
    root: Path
    index: Path
    url: str
    host: str

    def publish(self) -> None:
        done = run_envrepo("publish", "--to", self.index, "--registry", self.host, cwd=self.root)
        assert done.code == 0, done.err[-2000:]


@pytest.fixture(scope="module")
def platform(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The curated tree, built and pushed by the session, published and served over HTTP."""
    base = tmp_path_factory.mktemp("platform")
    root = base / "repo"
    git("clone", "-q", str(built.root), str(root), cwd=built.root)
    shutil.copytree(built.root / ".envrepo/builds", root / ".envrepo/builds")
    with serve_folder(base) as url:
        found = Platform(root, base / "index", f"{url}/index", built.registry.host)
        found.publish()
        yield found


def consumer(tmp_path: Path, platform: Platform, *extra: str) -> Path:
    root = tmp_path / "consumer"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    # A checkout between releases has no tag to pin the hooks at: its commit is given.
    rev = git("rev-parse", "HEAD", cwd=PROJECT)
    done = run_envrepo(
        "init", "--consumer", "--index", platform.url, "--hooks-rev", rev, *extra, cwd=root
    )
    assert done.code == 0, done.err
    return root


def test_a_consumer_pins_builds_on_checks_and_moves_a_published_environment(
    platform: Platform, tmp_path: Path
) -> None:
    root = consumer(tmp_path, platform)
    assert (root / ".gitignore").read_text() == ".envrepo/\n"
    pinned = run_envrepo("pin", TUTORIAL, cwd=root)
    assert pinned.code == 0, pinned.err
    lock = json.loads((root / "envrepo.lock").read_text())["pins"][TUTORIAL]
    v1 = manifest_digest(platform.host, TUTORIAL, "1")
    assert (lock["version"], lock["digest"], lock["index"]) == (1, v1, platform.url)
    assert lock["platforms"] == {"linux/amd64": v1}
    checked = run_envrepo("pin", "--check", cwd=root)
    assert (checked.code, checked.out.strip()) == (0, f"{TUTORIAL}@1: up to date")
    resolved = run_envrepo("resolve", TUTORIAL, cwd=root)
    assert resolved.out.strip() == f"{platform.host}/{TUTORIAL}@{v1}"
    # A run in the pinned version, from the consumer's own (committed) source.
    commit(root, "pin the tutorial")
    ran = run_envrepo(
        "run",
        f"{TUTORIAL}@1",
        "--output-dir",
        tmp_path / "run",
        "--",
        "python",
        "-c",
        "import sklearn; print(sklearn.__version__)",
        cwd=root,
    )
    assert ran.code == 0, ran.err[-2000:]
    record = json.loads((tmp_path / "run/run.json").read_text())
    assert (record["environment"]["version"], record["environment"]["digest"]) == (1, v1)
    assert record["source"]["commit"] == git("rev-parse", "HEAD", cwd=root)
    assert record["source"]["dirty"] is False

    # The consumer's own environment on the published one: locked on its packages, built
    # on its digest.
    (root / "envrepo.yaml").write_text(
        (root / "envrepo.yaml").read_text() + f"registry: {platform.host}\n"
    )
    write_files(
        root,
        {
            "environments/analysis/environment.yaml": (
                "name: analysis\nbase:\n  published:\n"
                f"    environment: {TUTORIAL}@1\n    index: {platform.url}\n"
                'python: "3.11"\npip: requirements.txt\n'
            ),
            "environments/analysis/requirements.txt": "tabulate==0.9.0\npandas\n",
            "environments/analysis/tests/test_stack.py": (
                "import pandas, tabulate\nprint(tabulate.tabulate([[pandas.__version__]]))\n"
            ),
        },
    )
    locked = run_envrepo("lock", "analysis", cwd=root)
    assert locked.code == 0, locked.err[-2000:]
    base_lock = (root / "environments/analysis/published-base.lock").read_text()
    assert f"{platform.host}/{TUTORIAL}@{v1}" in base_lock
    assert f"# published: {TUTORIAL}@1 hash " in base_lock
    own = (root / "environments/analysis/requirements.lock").read_text()
    assert "tabulate==0.9.0" in own and "\npandas==" not in own  # pandas comes with the base
    commit(root, "analysis on the tutorial")
    assert run_envrepo("lock", "--check", cwd=root).code == 0
    built = run_envrepo("build", "analysis", "--push", cwd=root)
    assert built.code == 0, built.err[-3000:]
    assert "test test_stack.py: passed" in built.err

    # The platform moves on: version 2 of the tutorial.
    requirements = platform.root / "environments/envrepo-tutorial/requirements.txt"
    requirements.write_text(requirements.read_text().replace("pandas==3.1.1", "pandas==3.1.0"))
    assert run_envrepo("lock", TUTORIAL, cwd=platform.root).code == 0
    commit(platform.root, "tutorial: pandas 3.1.0")
    rebuilt = run_envrepo(
        "build", TUTORIAL, "--push", "--registry", platform.host, cwd=platform.root
    )
    assert rebuilt.code == 0, rebuilt.err[-3000:]
    platform.publish()

    checked = run_envrepo("pin", "--check", cwd=root)
    assert checked.code == 0, checked.err
    lines = checked.out.splitlines()
    assert lines[0].startswith(f"{TUTORIAL}@1: newer versions: 2 (")
    assert lines[1].startswith(
        f"environments/analysis: its base {TUTORIAL}@1 has newer versions: 2"
    )
    assert run_envrepo("pin", "--check", "--strict", cwd=root).code == 1

    waiting = run_envrepo("pin", "--update", "--min-age", "1", cwd=root)
    assert waiting.code == 0
    assert f"{TUTORIAL}@1: nothing newer old enough to move to" in waiting.err
    assert json.loads((root / "envrepo.lock").read_text())["pins"][TUTORIAL]["version"] == 1
    moved = run_envrepo("pin", "--update", cwd=root)
    assert moved.code == 0, moved.err
    assert moved.out.splitlines() == [
        f"{TUTORIAL}: 1 → 2: pip: 1 patch",
        "  pip   patch   pandas 3.1.1 → 3.1.0",
    ]
    image = run_envrepo("resolve", TUTORIAL, cwd=root).out.strip()
    assert image == f"{platform.host}/{TUTORIAL}@{manifest_digest(platform.host, TUTORIAL, '2')}"
    client = docker.from_env()
    client.images.pull(image)
    try:
        output = client.containers.run(
            image,
            ["python", "-c", "import pandas; print(pandas.__version__)"],
            remove=True,
            network_disabled=True,
        )
    finally:
        client.images.remove(image)
    assert output.decode().strip() == "3.1.0"

    # Someone pushes another image under the same version: an integrity alarm.
    registry = connect(platform.host, platform.host)
    v2 = manifest_digest(platform.host, TUTORIAL, "2")
    registry.add_tags(TUTORIAL, v1, ["2"])
    try:
        alarm = run_envrepo("pin", "--check", cwd=root)
    finally:
        registry.add_tags(TUTORIAL, str(v2), ["2"])
    assert alarm.code == 1
    assert alarm.out.splitlines()[0] == (
        f"{TUTORIAL}@2: registry {platform.host} now names {v1} as {TUTORIAL}:2, the pin "
        f"{v2}: the same version names another image; do not use it, find out why"
    )


def test_a_deprecated_pin_fails_its_check_and_names_the_replacement(
    platform: Platform, tmp_path: Path
) -> None:
    root = consumer(tmp_path, platform)
    assert run_envrepo("pin", "envrepo-minimal@1", cwd=root).code == 0
    done = run_envrepo(
        "deprecate",
        "envrepo-minimal@1",
        "--reason",
        "python 3.11 is old",
        "--replacement",
        "envrepo-minimal@2",
        cwd=platform.root,
    )
    assert done.code == 0, done.err
    commit(platform.root, "deprecate minimal 1")
    try:
        platform.publish()
        checked = run_envrepo("pin", "--check", cwd=root)
    finally:
        shutil.rmtree(platform.root / "deprecations")
        commit(platform.root, "undo")
    assert checked.code == 1
    assert checked.out.strip() == (
        "envrepo-minimal@1: deprecated (python 3.11 is old); move to envrepo-minimal@2"
    )


def test_download_writes_the_folder_as_published_and_refuses_a_doctored_one(
    platform: Platform, tmp_path: Path
) -> None:
    root = consumer(tmp_path, platform)
    target = tmp_path / "minimal"
    done = run_envrepo("download", "envrepo-minimal@1", "-d", target, cwd=root)
    assert done.code == 0, done.err
    published = PROJECT / "environments/envrepo-minimal"
    for path in published.rglob("*"):
        if path.is_file():
            assert (target / path.relative_to(published)).read_bytes() == path.read_bytes()
    snapshot = platform.index / "environments/envrepo-minimal/1/folder.tar.gz"
    original = snapshot.read_bytes()
    snapshot.write_bytes(original[:-8] + bytes(8))
    try:
        doctored = run_envrepo("download", "envrepo-minimal@1", "-d", tmp_path / "again", cwd=root)
    finally:
        snapshot.write_bytes(original)
    assert doctored.code == 2
    assert "the snapshot was changed after it was published: do not use it" in doctored.err
    assert not (tmp_path / "again").exists()


def test_the_pin_check_hook_runs_in_real_pre_commit(
    platform: Platform, tmp_path: Path, project_rev: str, pre_commit_home: Path
) -> None:
    root = consumer(tmp_path, platform, "--hooks-repo", str(PROJECT), "--hooks-rev", project_rev)
    assert "envrepo-pin-check" in (root / ".pre-commit-config.yaml").read_text()
    assert run_envrepo("pin", "envrepo-bookworm@1", cwd=root).code == 0
    git("add", "-A", cwd=root)
    good = run_pre_commit(root, pre_commit_home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "envrepo pin --check" in good.stdout and "Passed" in good.stdout
    lock = json.loads((root / "envrepo.lock").read_text())
    lock["pins"]["envrepo-bookworm"]["digest"] = "sha256:" + "0" * 64
    (root / "envrepo.lock").write_text(json.dumps(lock))
    git("add", "-A", cwd=root)
    bad = run_pre_commit(root, pre_commit_home)
    assert bad.returncode == 1
    assert "the same version names another image" in bad.stdout

    # The composite action's step, as a consumer's workflow runs it.
    summary = tmp_path / "summary.md"
    action = subprocess.run(
        ["bash", str(PROJECT / ".github/actions/pin-check/run.sh")],
        env={**os.environ, "ENVREPO_WORKDIR": str(root), "GITHUB_STEP_SUMMARY": str(summary)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert action.returncode == 1, action.stderr
    assert action.stdout.startswith(
        "::error file=envrepo.lock,title=envrepo pin envrepo-bookworm::envrepo-bookworm@1: "
    )
    assert "| envrepo-bookworm | 1 | changed |" in summary.read_text()
