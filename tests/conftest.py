"""Fixtures: an isolated home for every test, scratch repositories, and the real services
(Docker, registries) started once per session by the project's own script. A test that
needs Docker is marked `docker`, so `pytest -m "not docker"` is the fast loop."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from registries import RunningRegistry, start_registry
from support import (
    PROJECT,
    Built,
    Released,
    RepoMaker,
    curated_repo,
    forget_images,
    git,
    release_envrepo,
    run_envrepo,
    services_script,
)


def _isolate(patch: pytest.MonkeyPatch, home: Path, caches: Path) -> None:
    """No test writes to the real home: config, state and logs go to a scratch home.

    uv's cache and envrepo's (layers, probes) are shared by the whole session, as they are
    by a user's runs: the network is asked once per package and a layer is made once.
    """
    patch.setenv("HOME", str(home))
    patch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    patch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    patch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    patch.setenv("GIT_AUTHOR_NAME", "envrepo tests")
    patch.setenv("GIT_AUTHOR_EMAIL", "tests@envrepo.invalid")
    patch.setenv("GIT_COMMITTER_NAME", "envrepo tests")
    patch.setenv("GIT_COMMITTER_EMAIL", "tests@envrepo.invalid")
    patch.setenv("UV_CACHE_DIR", str(caches / "uv-cache"))
    patch.setenv("XDG_CACHE_HOME", str(caches / "cache"))


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session fixtures (the built tree, registries) are set up before any test's own home:
    they get a scratch home of the session's."""
    with pytest.MonkeyPatch.context() as patch:
        _isolate(patch, tmp_path_factory.mktemp("home"), tmp_path_factory.getbasetemp())
        yield


@pytest.fixture(autouse=True)
def isolated_home(
    session_home: None, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _isolate(monkeypatch, tmp_path_factory.mktemp("home"), tmp_path_factory.getbasetemp())


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoMaker:
    return RepoMaker(tmp_path)


@pytest.fixture
def curated_copy(tmp_path: Path) -> Iterator[Path]:
    """A copy of this repository's curated tree and config, in a git repository of its own."""
    root = tmp_path / "curated"
    root.mkdir()
    shutil.copy(PROJECT / "envrepo.yaml", root / "envrepo.yaml")
    shutil.copytree(PROJECT / "environments", root / "environments")
    git("init", "-q", "-b", "main", cwd=root)
    yield root


@pytest.fixture(scope="session")
def project_rev() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{PROJECT} must be a git checkout with a commit for pre-commit to use it")
    return done.stdout.strip()


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """Docker and the default registry, started by the project's own script."""
    done = services_script("up")
    if done.returncode != 0:
        pytest.fail(
            f"scripts/services.sh could not bring up Docker and the registry:\n"
            f"{done.stdout}{done.stderr}"
        )


@pytest.fixture(scope="session")
def registry(
    docker_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRegistry]:
    """A registry of the test session's own, without auth."""
    running = start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    running.stop()
    forget_images(running.host)


@pytest.fixture(scope="session")
def built(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = curated_repo(tmp_path_factory.mktemp("built") / "repo")
    result = run_envrepo("build", "--push", "--registry", registry.host, cwd=root)
    assert result.code == 0, result.err[-3000:]
    return Built(root, result, registry)


@pytest.fixture
def scratch(built: Built, make_repo: object, tmp_path: Path) -> Path:
    """A repository with the curated root (already in the registry) and room for test cases."""
    root = tmp_path / "scratch"
    (root / "environments").mkdir(parents=True)
    shutil.copy(PROJECT / "envrepo.yaml", root / "envrepo.yaml")
    shutil.copytree(
        PROJECT / "environments/envrepo-bookworm", root / "environments/envrepo-bookworm"
    )
    git("init", "-q", "-b", "main", cwd=root)
    return root


def _on_this_machine(basetemp: Path) -> set[str]:
    """What a run can leave behind: containers, untagged images, envrepo's temporary folders,
    and processes working in them or in this session's folders."""
    found = {f"folder {p}" for p in Path(tempfile.gettempdir()).glob("envrepo-*")}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if entry.name.isdigit() and ("/envrepo-" in command or str(basetemp) in command):
            found.add(f"process {entry.name}: {command[:150]}")
    with contextlib.suppress(docker.errors.DockerException):
        client = docker.from_env()
        found |= {f"container {c.name} ({c.image})" for c in client.containers.list(all=True)}
        found |= {f"untagged image {i.id}" for i in client.images.list(filters={"dangling": True})}
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite ends with a check that it left nothing on the machine (torn down last, after
    the registries and the images the tests built are gone)."""
    basetemp = tmp_path_factory.getbasetemp()
    before = _on_this_machine(basetemp)
    yield
    left = sorted(_on_this_machine(basetemp) - before)
    assert not left, "the tests left behind:\n" + "\n".join(left)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every fixture that reaches Docker or a registry stands on docker_ready.
    for item in items:
        if "docker_ready" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    """envrepo as a release: tagged, built into a wheel and an sdist, installed outside."""
    return release_envrepo(tmp_path_factory.mktemp("release"))
