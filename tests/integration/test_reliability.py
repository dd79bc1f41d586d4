"""How builds test, stop and name images, against the real engine and registry: tests that
fail, hang or forge their result decide every tag and push (on a fresh build and on an image
reused without a record); SIGTERM and SIGINT leave nothing behind; builds of one hash take
turns and agree; one spec hash is one image in two clones with caches of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from envrepo.image.bootstrap import image_tag
from envrepo.repo.spec import Bootstrap
from support import (
    CHILD,
    Built,
    envrepo_command,
    git,
    is_pushed,
    local_tags,
    run_envrepo,
    stoppable_envrepo,
    tags_of,
    with_private_wheel,
    write_files,
)


def build(scratch: Path, built: Built, *names: str, push: bool = True) -> list[str]:
    args = ["build", *names, "--registry", built.registry.host] + (["--push"] if push else [])
    result = run_envrepo(*args, cwd=scratch, env={"CI": "true"})
    return [str(result.code), *result.lines]


def test_a_test_that_forges_a_pass_is_judged_by_its_exit_status(
    built: Built, scratch: Path
) -> None:
    forged = json.dumps({"tests": [{"test": "test_forged.py", "passed": True}], "packages": []})
    write_files(
        scratch,
        {
            "environments/forger/environment.yaml": CHILD.format(name="forger"),
            "environments/forger/tests/test_forged.py": (
                f"print('ENVREPO-RESULT {forged}')\nprint('passed', end='')\nraise SystemExit(1)\n"
            ),
            "environments/terse/environment.yaml": CHILD.format(name="terse"),
            "environments/terse/tests/test_terse.py": "print('no newline at the end', end='')\n",
        },
    )
    lines = build(scratch, built, "forger", "terse")
    assert lines[0] == "1"
    assert "forger | test test_forged.py: FAILED (exit 1)" in lines
    assert "terse | test test_terse.py: passed" in lines
    assert tags_of(built.registry.host, "forger") == []
    assert is_pushed(built.registry.host, "terse")


def test_a_hanging_test_is_stopped_at_its_timeout_and_the_build_goes_on(
    built: Built, scratch: Path
) -> None:
    write_files(
        scratch,
        {
            "environments/hangs/environment.yaml": CHILD.format(name="hangs") + "test_timeout: 3\n",
            "environments/hangs/tests/test_hangs.py": (
                "import time\nprint('waiting forever', flush=True)\ntime.sleep(3600)\n"
            ),
            "environments/after/environment.yaml": CHILD.format(name="after"),
        },
    )
    started = time.monotonic()
    lines = build(scratch, built, "hangs", "after")
    assert time.monotonic() - started < 120
    assert lines[0] == "1"
    assert "hangs |   waiting forever" in lines
    assert "hangs | test test_hangs.py: FAILED (stopped after 3 s)" in lines
    assert is_pushed(built.registry.host, "after")
    [record] = (scratch / ".envrepo/builds").glob("after-*.json")
    assert json.loads(record.read_text())["status"] == "built"


@pytest.mark.parametrize("push", [True, False], ids=["in the registry", "here"])
def test_changed_tests_run_on_an_image_reused_without_a_record(
    built: Built, scratch: Path, push: bool
) -> None:
    name = f"reused-{'pushed' if push else 'local'}"
    write_files(
        scratch,
        {
            f"environments/{name}/environment.yaml": CHILD.format(name=name),
            f"environments/{name}/tests/test_ok.py": "print('fine')\n",
        },
    )
    assert build(scratch, built, name, push=push)[0] == "0"
    before = tags_of(built.registry.host, name)
    # A fresh checkout: no build record; the tests changed, the spec hash did not.
    for record in (scratch / ".envrepo/builds").glob(f"{name}-*.json"):
        record.unlink()
    if push:
        client = docker.from_env()
        for tag in local_tags(name):
            client.images.remove(tag)
    (scratch / f"environments/{name}/tests/test_ok.py").write_text("raise SystemExit(4)\n")
    git("add", "-A", cwd=scratch)
    git("commit", "-qm", "the tests now fail", cwd=scratch)
    lines = build(scratch, built, name, push=push)
    assert lines[0] == "1"
    assert f"{name} | test test_ok.py: FAILED (exit 4)" in lines
    assert tags_of(built.registry.host, name) == before  # no tag for the new commit
    if push:
        assert local_tags(name) == []  # the image pulled for the tests was not kept


def big_wheel(folder: Path, data: int = 0) -> Path:
    """A real wheel with thousands of modules: installing and compiling it takes seconds; with
    `data` bytes that do not compress, so does loading its layer."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manymodules-1.0-py3-none-any.whl"
    info = "manymodules-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        names = []
        for number in range(6000):
            name = f"manymodules/m{number}.py"
            wheel.writestr(name, f"VALUE = {number}\n" + "X = [i for i in range(9)]\n" * 20)
            names.append(name)
        wheel.writestr("manymodules/__init__.py", "")
        if data:
            wheel.writestr("manymodules/data.bin", os.urandom(data))
            names.append("manymodules/data.bin")
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: manymodules\nVersion: 1.0\n"
        )
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        record = "".join(f"{n},,\n" for n in [*names, "manymodules/__init__.py"])
        wheel.writestr(
            f"{info}/RECORD", record + f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n"
        )
    return path


def children(pid: int) -> list[str]:
    """The command lines of every process descended from `pid`."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                commands[int(entry.name)] = (entry / "cmdline").read_text().replace("\0", " ")
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        for child, parent in parents.items():
            if parent == current:
                found.append(commands.get(child, ""))
                todo.append(child)
    return found


def leftovers(scratch_tmp: set[str]) -> list[str]:
    """Containers, envrepo temporary folders and processes a stopped build left behind."""
    client = docker.from_env()
    left = [f"container {c.name}" for c in client.containers.list(all=True)]
    left += [f"folder {p}" for p in Path("/tmp").glob("envrepo-*") if p.name not in scratch_tmp]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_text().replace("\0", " ")
            except OSError:
                continue
            if "envrepo-build-" in command or "envrepo-bootstrap-" in command:
                left.append(f"process {command[:120]}")
    return left


# What a stopped build exits with and says last.
STOPPED = {
    signal.SIGTERM: (143, "envrepo: terminated"),
    signal.SIGINT: (130, "envrepo: interrupted"),
}

MOMENTS: dict[str, Callable[[str, int, list[str]], bool]] = {
    # uv installing the locked files into the build's staging folder
    "staging": lambda name, pid, log: any("pip install --target" in c for c in children(pid)),
    # the layers streamed to the daemon: the log lists them just before
    "load": lambda name, pid, log: any("install manymodules-1.0" in line for line in log),
    # a smoke test of this environment running in its container
    "tests": lambda name, pid, log: any(
        "/envrepo-tests" in json.dumps(c.attrs.get("Mounts", []))
        and f"/environments/{name}/" in json.dumps(c.attrs.get("Mounts", []))
        for c in docker.from_env().containers.list()
    ),
}


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_signal_at_any_moment_leaves_nothing_behind(
    built: Built, scratch: Path, tmp_path: Path, moment: str, sent: signal.Signals
) -> None:
    name = f"stopped-{moment}-{sent.name.lower()}"
    slow = {f"environments/{name}/tests/test_slow.py": "import time\ntime.sleep(120)\n"}
    write_files(scratch, slow)
    wheel = big_wheel(tmp_path / "wheels", 300_000_000 if moment == "load" else 0)
    with_private_wheel(scratch, name, wheel, CHILD.format(name=name))
    before = {p.name for p in Path("/tmp").glob("envrepo-*")}
    args = ("build", name, "--push", "--registry", built.registry.host)
    with stoppable_envrepo(*args, cwd=scratch) as process:
        log: list[str] = []
        reader = threading.Thread(target=lambda: log.extend(process.stderr or ()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 300
        while not MOMENTS[moment](name, process.pid, log):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                reader.join(10)
                pytest.fail(f"the build never reached {moment}: {''.join(log)[-2000:]}")
            time.sleep(0.02)
        process.send_signal(sent)
        process.wait(timeout=120)
        reader.join(10)
    err = "".join(log)
    expected = STOPPED[sent]
    assert (process.returncode, err.splitlines()[-1]) == expected, err[-2000:]
    assert "Traceback" not in err
    assert leftovers(before) == []
    assert tags_of(built.registry.host, name) == []
    assert local_tags(name) == []
    assert docker.from_env().images.list(filters={"dangling": True}) == []


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_debootstrap_unmounts_and_removes_its_target(
    docker_ready: None, tmp_path: Path, sent: signal.Signals
) -> None:
    root = tmp_path / "repo"
    write_files(
        root,
        {
            "envrepo.yaml": "registry: 127.0.0.1:9\n",
            "environments/rooted/environment.yaml": (
                "name: rooted\nbase:\n  bootstrap:\n    suite: bookworm\n"
                "    packages: [python3, tzdata]\n"
                'python: "3.11"\nuser_managed: true\ninterpreter: /usr/bin/python3\n'
            ),
        },
    )
    # The daemon may keep this root or image from an earlier run (a run stopped after
    # debootstrap, a machine used again): then nothing would run debootstrap to be stopped.
    forget_rooted()
    before = {p.name for p in Path("/tmp").glob("envrepo-*")}
    with stoppable_envrepo("build", cwd=root) as process:
        deadline = time.monotonic() + 300
        while "/envrepo-bootstrap-" not in Path("/proc/self/mountinfo").read_text():
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"debootstrap never mounted /proc: {process.communicate()[1][-2000:]}")
            time.sleep(0.2)
        process.send_signal(sent)
        _, err = process.communicate(timeout=120)
    expected = STOPPED[sent]
    assert (process.returncode, err.splitlines()[-1]) == expected, err[-2000:]
    assert "/envrepo-bootstrap-" not in Path("/proc/self/mountinfo").read_text()
    assert leftovers(before) == []
    assert local_tags("rooted") == []


def forget_rooted() -> None:
    client = docker.from_env()
    root = image_tag(Bootstrap(suite="bookworm", packages=("python3", "tzdata")))
    for image in [*client.images.list(name="127.0.0.1:9/rooted"), *client.images.list(name=root)]:
        client.images.remove(image.id, force=True)


def test_two_builds_of_one_hash_at_once_agree(built: Built, scratch: Path) -> None:
    write_files(
        scratch,
        {
            "environments/twice/environment.yaml": CHILD.format(name="twice"),
            "environments/twice/tests/test_twice.py": "import time\ntime.sleep(2)\n",
        },
    )
    command = [envrepo_command(), "build", "twice", "--push", "--registry", built.registry.host]
    processes = [
        subprocess.Popen(
            command,
            cwd=scratch,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CI": "true"},
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [r[1][-2000:] for r in results]
    digests = {
        line.split()[2]
        for out, _ in results
        for line in out.splitlines()
        if line.startswith("twice ")
    }
    assert len(digests) == 1 and next(iter(digests)).startswith("sha256:")
    [record] = (scratch / ".envrepo/builds").glob("twice-*.json")
    assert json.loads(record.read_text())["digest"] in digests
    [log] = (scratch / ".envrepo/logs").glob("twice-*.log")
    assert log.read_text().count("test test_twice.py: passed") <= 1


def test_one_spec_hash_is_one_image_in_two_clones_with_caches_of_their_own(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    from support import make_wheel

    wheel = make_wheel(tmp_path / "w", "internal-tools", "1.0.0")
    with_private_wheel(scratch, "same", wheel, CHILD.format(name="same"))
    git("add", "-A", cwd=scratch)
    git("commit", "-qm", "same", cwd=scratch)
    client = docker.from_env()
    images = []
    for number in (1, 2):
        clone = tmp_path / f"clone{number}"
        git("clone", "-q", str(scratch), str(clone), cwd=tmp_path)
        caches = {
            "XDG_CACHE_HOME": str(tmp_path / f"cache{number}"),
            "UV_CACHE_DIR": str(tmp_path / f"uv{number}"),
        }
        result = run_envrepo(
            "build", "same", "--registry", built.registry.host, cwd=clone, env=caches
        )
        assert result.code == 0, result.err[-2000:]
        tags = local_tags("same")
        image = client.images.get(tags[0])
        images.append((image.id, image.attrs["RootFS"]["Layers"]))
        for found in local_tags("same"):
            client.images.remove(found)
    assert images[0] == images[1]


def test_a_distribution_the_base_image_has_in_another_version_is_replaced(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    from support import make_wheel

    old = make_wheel(tmp_path / "old", "oldpkg", "1.0")
    new = make_wheel(tmp_path / "new", "oldpkg", "2.0")
    with_private_wheel(scratch, "older", old, CHILD.format(name="older"))
    assert build(scratch, built, "older")[0] == "0"
    [record] = (scratch / ".envrepo/builds").glob("older-*.json")
    base = json.loads(record.read_text())["image"]
    write_files(
        scratch,
        {
            "environments/newer/environment.yaml": (
                f'name: newer\nbase:\n  image: {base}\npython: "3.11"\nwheels: wheels\n'
            ),
            f"environments/newer/wheels/{new.name}": new.read_bytes(),
        },
    )
    assert run_envrepo("lock", "newer", cwd=scratch).code == 0
    assert build(scratch, built, "newer")[0] == "0"
    [record] = (scratch / ".envrepo/builds").glob("newer-*.json")
    image = json.loads(record.read_text())["image"]
    script = (
        "import importlib.metadata as m, os, sys; "
        "print(sorted(d.version for d in m.distributions() if d.metadata['Name'] == 'oldpkg')); "
        "print(sorted(n for n in os.listdir(sys.argv[1]) if n.startswith('oldpkg')))"
    )
    site = "/opt/env/lib/python3.11/site-packages"
    client = docker.from_env()
    output = client.containers.run(
        image, ["/opt/env/bin/python", "-c", script, site], remove=True, network_disabled=True
    )
    assert output.decode().splitlines() == ["['2.0']", "['oldpkg', 'oldpkg-2.0.dist-info']"]
    # The environment has no pip: uv's own `pip check` (the host's binary, mounted) judges it.
    from envrepo.lock.uv import binary as uv

    checked = client.containers.run(
        image,
        ["/envrepo-uv", "pip", "check", "--python", "/opt/env/bin/python", "--offline"],
        volumes={uv(): {"bind": "/envrepo-uv", "mode": "ro"}},
        remove=True,
        network_disabled=True,
        stderr=True,
    )
    assert "All installed packages are compatible" in checked.decode()


def test_the_same_apt_packages_on_the_same_base_give_the_same_layer(built: Built) -> None:
    from envrepo.engine.docker import Docker
    from envrepo.image import apt
    from support import curated_root_image

    engine = Docker()
    base = engine.image(curated_root_image())
    assert base is not None
    layers = []
    for _ in range(2):
        with apt.installed(engine, base, ["libgomp1"], lambda line: None) as image:
            layers.append(image.layers[-1])
    assert layers[0] == layers[1]
    assert docker.from_env().images.list(filters={"dangling": True}) == []


def test_a_damaged_layer_in_the_cache_is_made_again_and_the_image_is_the_same(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    from support import make_wheel

    wheel = make_wheel(tmp_path / "w", "healing", "1.0.0")
    with_private_wheel(scratch, "healed", wheel, CHILD.format(name="healed"))
    assert build(scratch, built, "healed", push=False)[0] == "0"
    client = docker.from_env()
    made = client.images.get(local_tags("healed")[0])
    first, first_layers = made.id, made.attrs["RootFS"]["Layers"]
    [layer] = [
        path
        for path in (Path(os.environ["XDG_CACHE_HOME"]) / "envrepo/layers").glob("*.tar")
        if b"healing/__init__.py" in path.read_bytes()
    ]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0x01
    layer.write_bytes(bytes(data))
    for tag in local_tags("healed"):
        client.images.remove(tag)
    lines = build(scratch, built, "healed", push=False)
    assert lines[0] == "0", lines
    warning = (
        f"healed | warning: the layer cache's {layer} does not match its recorded digest; "
        "made again"
    )
    assert warning in lines
    again = client.images.get(local_tags("healed")[0])
    # The layers first: should the image differ, the failure names the layer that does.
    assert again.attrs["RootFS"]["Layers"] == first_layers, lines
    assert again.id == first
