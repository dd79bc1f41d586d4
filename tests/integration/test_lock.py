"""Locking: pip through uv against a local index the tests build (and PyPI once), private
wheels, parent pins, upgrades, conda through rattler against a local channel, the hook."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from support import (
    PROJECT,
    RepoMaker,
    git,
    index_channel,
    make_conda_package,
    make_index,
    make_wheel,
    run_envrepo,
    write_files,
)

SPEC = 'name: {name}\nbase:\n  {base}\npython: "3.11"\n'


class Index:
    """A local package index; `publish` adds releases, as a real index gets new ones."""

    def __init__(self, root: Path) -> None:
        self.files = root / "files"
        self.simple = root / "simple"
        self.wheels: list[Path] = []
        self.url = ""

    def publish(self, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
        self.wheels.append(make_wheel(self.files, name, version, requires))
        shutil.rmtree(self.simple, ignore_errors=True)
        self.url = make_index(self.simple, self.wheels)


@pytest.fixture
def index(tmp_path: Path) -> Index:
    packages = Index(tmp_path / "index")
    packages.publish("alpha", "1.0.0")
    packages.publish("alpha", "2.0.0")
    packages.publish("beta", "1.0.0", ("alpha>=1",))
    packages.publish("gamma", "1.0.0")
    return packages


@pytest.fixture
def uv_env(index: Index, tmp_path: Path) -> dict[str, str]:
    # uv's own settings choose the index; envrepo never names one.
    return {"UV_DEFAULT_INDEX": index.url, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}


def env_spec(
    name: str,
    base: str = "image: python:3.11-slim@sha256:abababababababababababababababababababababababababababababababab",
    extra: str = "",
) -> str:
    return SPEC.format(name=name, base=base) + extra


@pytest.fixture
def repo(make_repo: RepoMaker) -> Path:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/root/environment.yaml": env_spec("root", extra="pip: requirements.txt\n"),
            "environments/root/requirements.txt": "alpha==1.0.0\n",
            "environments/leaf/environment.yaml": env_spec(
                "leaf", base="environment: root", extra="pip: requirements.txt\n"
            ),
            "environments/leaf/requirements.txt": "beta\n",
        },
    )
    return root


def pins(lock: Path) -> list[str]:
    return [
        line.split(" ")[0] for line in lock.read_text().splitlines() if line and line[0] not in "# "
    ]


def test_lock_pins_exact_versions_with_hashes_and_no_index(
    repo: Path, uv_env: dict[str, str], index: Index
) -> None:
    result = run_envrepo("lock", "--all", cwd=repo, env=uv_env)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "locking root (1/2)",
        "locking leaf (2/2)",
        "wrote environments/root/requirements.lock",
        "wrote environments/leaf/requirements.lock",
    ]
    assert (
        result.err
        == "envrepo lock: 2 locks changed, 0 unchanged, 0 environments failed, 0 skipped\n"
    )
    root_lock = (repo / "environments/root/requirements.lock").read_text()
    assert pins(repo / "environments/root/requirements.lock") == ["alpha==1.0.0"]
    assert "--hash=sha256:" in root_lock
    assert index.url not in root_lock
    assert "--index-url" not in root_lock and "--extra-index-url" not in root_lock
    assert "# target: python 3.11, linux/amd64" in root_lock
    assert run_envrepo("validate", cwd=repo).code == 0


def test_child_inherits_parent_pins_and_locks_only_its_own(
    repo: Path, uv_env: dict[str, str]
) -> None:
    assert run_envrepo("lock", "--all", cwd=repo, env=uv_env).code == 0
    # beta needs alpha>=1 and the index offers 2.0.0, but the parent pinned 1.0.0, which the
    # parent's layer already holds: the child's lock has beta alone.
    assert pins(repo / "environments/leaf/requirements.lock") == ["beta==1.0.0"]


def test_locking_again_rewrites_nothing_and_resolves_nothing(
    repo: Path, uv_env: dict[str, str], index: Index
) -> None:
    assert run_envrepo("lock", "--all", cwd=repo, env=uv_env).code == 0
    locks = sorted(repo.glob("environments/*/requirements.lock"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in locks}
    # With the index gone, only a lock that asks it nothing succeeds.
    shutil.rmtree(index.simple)
    again = run_envrepo("lock", "--all", cwd=repo, env=uv_env)
    assert again.code == 0, again.err
    assert "wrote" not in again.out
    assert again.err.startswith("envrepo lock: 0 locks changed, 2 unchanged")
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in locks} == before
    upgrade = run_envrepo("lock", "root", "--upgrade-package", "alpha", cwd=repo, env=uv_env)
    # An upgrade asks the index again, and says in one line that it is not there.
    assert upgrade.code == 2, upgrade.err
    assert "Traceback" not in upgrade.err and "cannot be locked" in upgrade.err, upgrade.err
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in locks} == before


def test_parent_pin_conflict_names_both_sides_and_keeps_the_lock(
    repo: Path, uv_env: dict[str, str]
) -> None:
    assert run_envrepo("lock", "--all", cwd=repo, env=uv_env).code == 0
    leaf_lock = repo / "environments/leaf/requirements.lock"
    before = leaf_lock.read_bytes()
    (repo / "environments/leaf/requirements.txt").write_text("beta\nalpha==2.0.0\n")
    result = run_envrepo("lock", "leaf", cwd=repo, env=uv_env)
    assert result.code == 2
    assert result.err.splitlines()[0] == (
        "environments/leaf/requirements.txt: line 2: alpha: leaf asks for alpha==2.0.0 but its "
        "base environment root pinned alpha==1.0.0 (environments/root/requirements.lock); a "
        "derived environment keeps its base's pins: change the requirement, or change and "
        "re-lock root"
    )
    assert leaf_lock.read_bytes() == before


@pytest.mark.parametrize(
    ("requirement", "needle"),
    [
        ("alpha>=5", "alpha"),
        ("no-such-package==1.0", "no-such-package"),
    ],
)
def test_unresolvable_requirements_keep_the_previous_lock(
    repo: Path, uv_env: dict[str, str], requirement: str, needle: str
) -> None:
    assert run_envrepo("lock", "--all", cwd=repo, env=uv_env).code == 0
    root_lock = repo / "environments/root/requirements.lock"
    before = root_lock.read_bytes()
    (repo / "environments/root/requirements.txt").write_text(f"{requirement}\n")
    result = run_envrepo("lock", "--all", cwd=repo, env=uv_env)
    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0].startswith(
        "environments/root/requirements.lock: root cannot be locked for python 3.11 on "
        "linux/amd64: "
    )
    assert needle in lines[0]
    assert lines[1] == ("leaf: skipped: an environment it is built on failed to lock")
    assert "Traceback" not in result.err
    assert root_lock.read_bytes() == before


def test_check_finds_a_stale_lock_offline(repo: Path, uv_env: dict[str, str]) -> None:
    assert run_envrepo("lock", "--all", cwd=repo, env=uv_env).code == 0
    offline = ["unshare", "--net", "--"]
    probe = subprocess.run([*offline, "true"], check=False)
    if probe.returncode != 0:
        pytest.fail("unshare --net is needed to prove --check works without a network")

    def check() -> subprocess.CompletedProcess[str]:
        from support import envrepo_command

        return subprocess.run(
            [*offline, envrepo_command(), "lock", "--check"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )

    assert check().returncode == 0
    (repo / "environments/root/requirements.txt").write_text("alpha==2.0.0\n")
    stale = check()
    assert stale.returncode == 1
    assert stale.stdout.splitlines() == [
        "environments/root/requirements.lock: is stale: its inputs, the target (python 3.11, "
        "linux/amd64) or a base environment's lock changed since it was locked; run envrepo "
        "lock root",
    ]


def test_upgrade_one_package_leaves_the_other_pins(
    make_repo: RepoMaker, index: Index, uv_env: dict[str, str]
) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": env_spec("app", extra="pip: requirements.txt\n"),
            "environments/app/requirements.txt": "beta\ngamma\n",
        },
    )
    assert run_envrepo("lock", "app", cwd=root, env=uv_env).code == 0
    lock_file = root / "environments/app/requirements.lock"
    assert pins(lock_file) == ["alpha==2.0.0", "beta==1.0.0", "gamma==1.0.0"]
    index.publish("beta", "1.1.0", ("alpha>=1",))
    index.publish("gamma", "1.1.0")
    uv_env = {**uv_env, "UV_DEFAULT_INDEX": index.url}
    assert run_envrepo("lock", "app", cwd=root, env=uv_env).code == 0
    assert pins(lock_file) == ["alpha==2.0.0", "beta==1.0.0", "gamma==1.0.0"]
    assert run_envrepo("lock", "app", "-P", "gamma", cwd=root, env=uv_env).code == 0
    assert pins(lock_file) == ["alpha==2.0.0", "beta==1.0.0", "gamma==1.1.0"]
    assert run_envrepo("lock", "app", "--upgrade", cwd=root, env=uv_env).code == 0
    assert pins(lock_file) == ["alpha==2.0.0", "beta==1.1.0", "gamma==1.1.0"]


def test_private_wheels_take_part_and_shadow_the_index(
    make_repo: RepoMaker, index: Index, uv_env: dict[str, str], tmp_path: Path
) -> None:
    index.publish("internal-tools", "9.0.0")
    root = make_repo("")
    wheel = make_wheel(tmp_path / "private", "internal-tools", "1.0.0", ("alpha==1.0.0",))
    write_files(
        root,
        {
            "environments/app/environment.yaml": env_spec(
                "app", extra="pip: requirements.txt\nwheels: wheels\n"
            ),
            "environments/app/requirements.txt": "internal-tools\n",
            f"environments/app/wheels/{wheel.name}": wheel.read_bytes(),
        },
    )
    result = run_envrepo("lock", "app", cwd=root, env=uv_env)
    assert result.code == 0, result.err
    lock_text = (root / "environments/app/requirements.lock").read_text()
    assert pins(root / "environments/app/requirements.lock") == [
        "alpha==1.0.0",
        "internal-tools==1.0.0",
    ]

    assert f"--hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}" in lock_text
    assert str(tmp_path) not in lock_text


@pytest.mark.parametrize("kind", ["mismatch", "corrupt"])
def test_bad_private_wheels_are_one_line_and_keep_the_lock(
    make_repo: RepoMaker, uv_env: dict[str, str], tmp_path: Path, kind: str
) -> None:
    root = make_repo("")
    name = "internal_tools-1.0.0-py3-none-any.whl"
    good = make_wheel(tmp_path / "good", "internal-tools", "1.0.0")
    write_files(
        root,
        {
            "environments/app/environment.yaml": env_spec("app", extra="wheels: wheels\n"),
            f"environments/app/wheels/{name}": good.read_bytes(),
        },
    )
    assert run_envrepo("lock", "app", cwd=root, env=uv_env).code == 0
    lock_file = root / "environments/app/requirements.lock"
    before = lock_file.read_bytes()
    if kind == "mismatch":
        bad = make_wheel(tmp_path / "bad", "internal-tools", "1.0.0", metadata_name="other-name")
        data = bad.read_bytes()
        expected = (
            f"environments/app/wheels/{name}: is named internal-tools 1.0.0 but its metadata "
            "says other-name 1.0.0; rename the file as its metadata says or rebuild it"
        )
    else:
        data = good.read_bytes()[:-40]
        expected = f"environments/app/wheels/{name}: is corrupt ("
    (root / f"environments/app/wheels/{name}").write_bytes(data)
    result = run_envrepo("lock", "app", cwd=root, env=uv_env)
    assert result.code == 2
    assert result.err.splitlines()[0].startswith(expected)
    assert len(result.err.splitlines()) == 2  # the line, then the summary
    assert lock_file.read_bytes() == before


@pytest.mark.network
def test_private_wheel_never_resolves_to_the_same_name_on_pypi(
    make_repo: RepoMaker, tmp_path: Path
) -> None:
    # six 1.16.0 and 1.17.0 are on PyPI; the private six 1.16.0 has other bytes. Asking for
    # plain `six` must give the private wheel, not PyPI's newer release nor PyPI's file.
    root = make_repo("")
    wheel = make_wheel(tmp_path / "private", "six", "1.16.0")
    write_files(
        root,
        {
            "environments/app/environment.yaml": env_spec(
                "app", extra="pip: requirements.txt\nwheels: wheels\n"
            ),
            "environments/app/requirements.txt": "six\n",
            f"environments/app/wheels/{wheel.name}": wheel.read_bytes(),
        },
    )
    result = run_envrepo("lock", "app", cwd=root)
    assert result.code == 0, result.err

    text = (root / "environments/app/requirements.lock").read_text()
    assert pins(root / "environments/app/requirements.lock") == ["six==1.16.0"]
    hashes = [
        line.split("sha256:")[1].strip(" \\") for line in text.splitlines() if "--hash" in line
    ]
    assert hashes == [hashlib.sha256(wheel.read_bytes()).hexdigest()]


@pytest.mark.network
def test_pypi_lock_and_exclude_newer_recreates_old_pins(make_repo: RepoMaker) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": env_spec(
                "app", extra='pip: requirements.txt\nexclude_newer: "2021-01-01"\n'
            ),
            "environments/app/requirements.txt": "six\n",
        },
    )
    result = run_envrepo("lock", "app", cwd=root)
    assert result.code == 0, result.err
    lock_file = root / "environments/app/requirements.lock"
    # six 1.16.0 came out in May 2021: the cut-off keeps the lock at what was current then.
    assert pins(lock_file) == ["six==1.15.0"]
    assert "# target: python 3.11, linux/amd64, packages up to 2021-01-01" in lock_file.read_text()
    lock_file.unlink()
    assert run_envrepo("lock", "app", cwd=root).code == 0
    assert pins(lock_file) == ["six==1.15.0"]


@pytest.fixture
def channel(tmp_path: Path) -> str:
    root = tmp_path / "channel"
    make_conda_package(root, "libcore", "1.0")
    make_conda_package(root, "libcore", "2.0")
    make_conda_package(root, "toolkit", "1.0", ("libcore >=2",))
    make_conda_package(root, "native", "3.1", ("libcore",), subdir="linux-64")
    return index_channel(root)


def test_conda_lock_against_a_local_channel(
    make_repo: RepoMaker, channel: str, uv_env: dict[str, str]
) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/sci/environment.yaml": env_spec("sci", extra="conda: conda.yaml\n"),
            "environments/sci/conda.yaml": (
                f"channels:\n  - {channel}\ndependencies:\n  - toolkit==1.0\n  - native==3.1\n"
                "  - pip:\n      - gamma==1.0.0\n"
            ),
        },
    )
    result = run_envrepo("lock", "sci", cwd=root, env=uv_env)
    assert result.code == 0, result.err
    conda_lock = (root / "environments/sci/conda.lock").read_text()
    urls = [line for line in conda_lock.splitlines() if line.startswith("file://")]
    assert [u.rsplit("/", 1)[1].split("#")[0] for u in urls] == [
        "native-3.1-0.tar.bz2",
        "libcore-2.0-0.tar.bz2",
        "toolkit-1.0-0.tar.bz2",
    ]
    assert all("#sha256=" in u and len(u.split("#sha256=")[1]) == 64 for u in urls)
    assert "# platform: linux-64\n@EXPLICIT\n" in conda_lock
    assert pins(root / "environments/sci/requirements.lock") == ["gamma==1.0.0"]
    before = conda_lock
    again = run_envrepo("lock", "sci", cwd=root, env=uv_env)
    assert "wrote" not in again.out
    assert (root / "environments/sci/conda.lock").read_text() == before
    assert run_envrepo("validate", cwd=root).code == 0


def test_missing_conda_channel_is_one_line(make_repo: RepoMaker, tmp_path: Path) -> None:
    root = make_repo("")
    missing = (tmp_path / "no-such-channel").as_uri()
    write_files(
        root,
        {
            "environments/sci/environment.yaml": env_spec("sci", extra="conda: conda.yaml\n"),
            "environments/sci/conda.yaml": f"channels: [{missing}]\ndependencies: [toolkit==1.0]\n",
        },
    )
    result = run_envrepo("lock", "sci", cwd=root)
    assert result.code == 2
    [line] = [x for x in result.err.splitlines() if x.startswith("environments/sci/")]
    assert line.startswith(
        "environments/sci/conda.lock: sci cannot be locked: a channel cannot be reached ("
    )
    assert "no-such-channel" in line
    assert line.endswith(
        "that is the network or the channel's server, not environments/sci/conda.yaml: check "
        "the connection and the channel's URL, then lock again"
    )
    assert not (root / "environments/sci/conda.lock").exists()


def test_an_unreachable_channel_server_is_the_networks_problem(make_repo: RepoMaker) -> None:
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    root = make_repo("")
    write_files(
        root,
        {
            "environments/sci/environment.yaml": env_spec("sci", extra="conda: conda.yaml\n"),
            "environments/sci/conda.yaml": (
                f"channels: [http://127.0.0.1:{port}/conda-forge]\n"
                "dependencies:\n  - cudf==24.8.*\n  - jaxlib>=0.4.31=cuda12*\n"
                "  - pkg=1.2=h123_0\n  - conda-forge::numpy\n"
            ),
        },
    )
    result = run_envrepo("lock", "sci", cwd=root)
    assert result.code == 2, result.err
    [line] = [x for x in result.err.splitlines() if x.startswith("environments/sci/")]
    assert "a channel cannot be reached" in line and "Connection refused" in line, line
    assert "not environments/sci/conda.yaml" in line


def test_missing_conda_package_is_one_line(make_repo: RepoMaker, channel: str) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/sci/environment.yaml": env_spec("sci", extra="conda: conda.yaml\n"),
            "environments/sci/conda.yaml": f"channels: [{channel}]\ndependencies: [nothere==1.0]\n",
        },
    )
    result = run_envrepo("lock", "sci", cwd=root)
    assert result.code == 2, result.err
    [line] = [x for x in result.err.splitlines() if x.startswith("environments/sci/")]
    assert line.startswith("environments/sci/conda.lock: sci cannot be locked for linux/amd64: ")
    assert "nothere" in line, result.err
    assert "Traceback" not in result.err


def test_lock_hook_rewrites_stale_locks_through_pre_commit(
    repo: Path, uv_env: dict[str, str], pre_commit_home: Path, project_rev: str
) -> None:
    import yaml
    from test_precommit import run_pre_commit

    config = {
        "repos": [
            {
                "repo": str(PROJECT),
                "rev": project_rev,
                "hooks": [{"id": "envrepo-lock"}, {"id": "envrepo-validate"}],
            }
        ]
    }
    write_files(repo, {".pre-commit-config.yaml": yaml.safe_dump(config)})
    git("add", "-A", cwd=repo)
    first = run_pre_commit(repo, pre_commit_home, uv_env)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "wrote environments/root/requirements.lock" in first.stdout
    assert (repo / "environments/leaf/requirements.lock").is_file()
    git("add", "-A", cwd=repo)
    second = run_pre_commit(repo, pre_commit_home, uv_env)
    assert second.returncode == 0, second.stdout + second.stderr


def test_lock_on_a_terminal_shows_progress_and_a_summary(
    repo: Path, uv_env: dict[str, str]
) -> None:
    from support import run_on_terminal

    code, screen = run_on_terminal(["lock", "--all"], repo, {**uv_env, "CI": ""})
    assert code == 0, screen
    assert "locking" in screen
    assert "envrepo lock: 2 locks changed" in screen


def test_a_wheel_dropped_into_wheels_is_locked_without_naming_the_folder(
    repo: Path, uv_env: dict[str, str], tmp_path: Path
) -> None:
    run_envrepo("lock", "root", cwd=repo, env=uv_env)
    make_wheel(repo / "environments/root/wheels", "private-tool", "0.1.0")
    assert run_envrepo("lock", "--check", "root", cwd=repo).code == 1
    result = run_envrepo("lock", "root", cwd=repo, env=uv_env)
    assert result.code == 0, result.err
    assert "wrote environments/root/requirements.lock" in result.out
    assert "private-tool==0.1.0" in pins(repo / "environments/root/requirements.lock")


def test_a_constraints_file_in_the_folder_is_honoured(repo: Path, uv_env: dict[str, str]) -> None:
    write_files(
        repo,
        {
            "environments/root/requirements.txt": "alpha\n-c constraints.txt\n",
            "environments/root/constraints.txt": "alpha<2\ngamma==1.0.0\n",
        },
    )
    result = run_envrepo("lock", "root", cwd=repo, env=uv_env)
    assert result.code == 0, result.err
    # The constraint limits alpha and asks for nothing: gamma is not installed.
    assert pins(repo / "environments/root/requirements.lock") == ["alpha==1.0.0"]
    (repo / "environments/root/constraints.txt").write_text("alpha>=2\n")
    assert run_envrepo("lock", "--check", "root", cwd=repo).code == 1
    assert run_envrepo("lock", "root", "-P", "alpha", cwd=repo, env=uv_env).code == 0
    assert pins(repo / "environments/root/requirements.lock") == ["alpha==2.0.0"]
