"""Shared fixtures: the installed envrepo command, scratch repositories, an isolated home."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envrepo.repo.spec import Spec

PROJECT = Path(__file__).resolve().parent.parent


def envrepo_command() -> str:
    """The console script installed beside the interpreter running the tests."""
    found = Path(sys.executable).parent / "envrepo"
    if not found.is_file():
        pytest.fail(f"envrepo is not installed beside {sys.executable}; run scripts/setup.sh")
    return str(found)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines() + self.err.splitlines()


def run_envrepo(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
    done = subprocess.run(
        [envrepo_command(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_on_terminal(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run envrepo with a pseudo-terminal as its output, as a person at a terminal would."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [envrepo_command(), *args],
        cwd=cwd,
        stdout=terminal,
        stderr=terminal,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "160", "TERM": "xterm", **(env or {})},
    )
    os.close(terminal)
    chunks = []
    while select.select([controller], [], [], 120)[0]:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=120), b"".join(chunks).decode(errors="replace")


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


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


class RepoMaker:
    """Scratch environment repositories: a git work tree with envrepo.yaml and environments/."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.count = 0

    def __call__(self, config: str = "reserved_prefix: team-\n") -> Path:
        self.count += 1
        root = self.base / f"repo{self.count}"
        (root / "environments").mkdir(parents=True)
        (root / "envrepo.yaml").write_text(config)
        git("init", "-q", "-b", "main", cwd=root)
        return root


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoMaker:
    return RepoMaker(tmp_path)


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


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


def services_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PROJECT / "scripts/services.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """Docker and the default registry, started by the project's own script."""
    done = services_script("up")
    if done.returncode != 0:
        pytest.fail(
            f"scripts/services.sh could not bring up Docker and the registry:\n"
            f"{done.stdout}{done.stderr}"
        )


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RunningRegistry:
    host: str
    folder: Path


def start_registry(folder: Path, htpasswd: Path | None = None) -> RunningRegistry:
    port = free_port()
    args = ["registry", str(port), str(folder)] + ([str(htpasswd)] if htpasswd else [])
    done = services_script(*args)
    if done.returncode != 0:
        pytest.fail(f"could not start a registry: {done.stdout}{done.stderr}")
    return RunningRegistry(f"127.0.0.1:{port}", folder)


def forget_images(host: str) -> None:
    """Untag what the tests built under a registry of their own, and drop what that frees."""
    import docker

    client = docker.from_env()
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{host}/"):
                client.images.remove(tag)
    client.images.prune(filters={"dangling": True, "label": "dev.envrepo.name"})


@pytest.fixture(scope="session")
def registry(
    docker_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningRegistry]:
    """A registry of the test session's own, without auth."""
    running = start_registry(tmp_path_factory.mktemp("registry"))
    yield running
    services_script("stop-registry", str(running.folder))
    forget_images(running.host)


def write_fresh_lock(root: Path, name: str, body: str) -> Spec:
    """A pip lock for environment `name` whose header matches its inputs now (no resolver);
    the environment's Spec."""
    from envrepo.inputs import sources
    from envrepo.lock import files as lock
    from envrepo.repo.config import open_repository
    from envrepo.repo.spec import load_catalog

    spec = load_catalog(open_repository(root, explicit=True)[0]).specs[name]
    [item] = sources.lock_inputs(spec)
    item.lock.write_text(lock.lock_text(spec, item, lock.input_digest(spec, item, []), body, "uv 0"))
    return spec
