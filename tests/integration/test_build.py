"""Building images against a real Docker Engine and a real registry: the curated tree from
the Debian archive up, tags, push (once with auth), pull by digest, and the failures."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import docker
import yaml

from support import (
    CHILD,
    PROJECT,
    Built,
    commit,
    curated_repo,
    curated_root_image,
    git,
    is_pushed,
    local_tags,
    lock_pins,
    make_wheel,
    manifest_digest,
    pushed_tag,
    run_envrepo,
    tags_of,
    with_private_wheel,
    write_files,
    write_fresh_lock,
)

CURATED = ["envrepo-bookworm", "envrepo-minimal", "envrepo-tutorial"]


def test_curated_tree_builds_tags_and_pushes(built: Built) -> None:
    head = git("rev-parse", "HEAD", cwd=built.root)
    for name in CURATED:
        record = built.record(name)
        assert record["status"] == "built"
        digest = manifest_digest(built.registry.host, name, f"h-{str(record['hash'])[:12]}")
        assert digest == record["digest"]
        assert manifest_digest(built.registry.host, name, f"sha-{head[:12]}") == digest
        # :latest and :<version> are publish's to move, not build's.
        assert "latest" not in tags_of(built.registry.host, name)
    tutorial = built.record("envrepo-tutorial")
    assert tutorial["tests"] == [
        {
            "test": "test_imports.py",
            "passed": True,
            "exit": 0,
            "timed_out": False,
            "seconds": tutorial["tests"][0]["seconds"],
        }  # type: ignore[index]
    ]
    tested = f"t-{str(tutorial['tests_digest'])[:24]}"
    assert manifest_digest(built.registry.host, "envrepo-tutorial", tested) == tutorial["digest"]
    log = Path(str(tutorial["log"])).read_text()
    assert "envrepo: install scikit-learn-1.9.1" in log
    assert "test test_imports.py: passed" in log
    # The image holds only what its hash covers: the commit and the build time are in the
    # tags and the record.
    image = docker.from_env().images.get(str(tutorial["image"]))
    assert image.labels == {
        "dev.envrepo.hash": tutorial["hash"],
        "dev.envrepo.name": "envrepo-tutorial",
    }
    assert image.attrs["Created"] == "1970-01-01T00:00:00Z"


def test_pulled_by_digest_the_tutorial_imports_at_the_locked_versions(built: Built) -> None:
    client = docker.from_env()
    record = built.record("envrepo-tutorial")
    reference = f"{built.registry.host}/envrepo-tutorial@{record['digest']}"
    client.images.pull(reference)
    probe = (
        "import json, sklearn, pandas, matplotlib; "
        "print(json.dumps({'scikit-learn': sklearn.__version__, 'pandas': pandas.__version__, "
        "'matplotlib': matplotlib.__version__}))"
    )
    output = client.containers.run(
        reference, ["python", "-c", probe], remove=True, network_disabled=True
    )
    versions = json.loads(output.decode().strip())
    pins = lock_pins(PROJECT / "environments/envrepo-tutorial/requirements.lock")
    assert versions == {name: pins[name] for name in versions}
    installed = record["packages"]
    assert installed["pip"]["pandas"] == [pins["pandas"], "BSD-3-Clause"]  # type: ignore[index]
    assert installed["apt"]["python3"][0].startswith("3.11")  # type: ignore[index]


def test_the_image_imports_from_its_bytecode_and_test_suites_stay_sources(
    built: Built,
) -> None:
    client = docker.from_env()
    image = str(built.record("envrepo-tutorial")["image"])
    site = "/opt/env/lib/python3.11/site-packages"
    container = client.containers.create(
        image,
        [
            "python",
            "-c",
            "import sklearn.linear_model, pandas, matplotlib.pyplot, scipy.stats; "
            f"import os; print(os.path.isdir('{site}/pandas/tests/__pycache__'))",
        ],
        network_disabled=True,
    )
    try:
        container.start()
        assert container.wait(timeout=120)["StatusCode"] == 0
        assert container.logs().decode().strip() == "False"
        # Python wrote no bytecode: what the image ships is valid for its interpreter.
        written = [c["Path"] for c in container.diff() or [] if c["Path"].endswith(".pyc")]
        assert written == []
    finally:
        container.remove(force=True)


def test_bytecode_for_another_interpreter_is_compiled_in_the_base_image(
    built: Built, tmp_path: Path
) -> None:
    from envrepo.engine.docker import Docker
    from envrepo.image.bytecode import Job, compile_staged
    from envrepo.image.checks import Python

    staging = tmp_path / "staging"
    write_files(staging, {"target/pkg/mod.py": "VALUE = 41 + 1\n"})
    # A cache tag the host does not have: the base image's own interpreter compiles.
    python = Python("/usr/bin/python3.11", "3.11.2", "cpython-311-elsewhere")
    compile_staged(
        Docker(), curated_root_image(), python, staging, [Job("target/pkg/mod.py", "/x/pkg/mod.py")]
    )
    [pyc] = (staging / "target/pkg/__pycache__").iterdir()
    assert pyc.name == "mod.cpython-311.pyc"
    assert pyc.stat().st_uid == os.getuid()
    assert not (staging / "envrepo-compile.json").exists()


def test_the_child_adds_layers_on_its_parent_and_no_wheel_is_in_any_layer(built: Built) -> None:
    client = docker.from_env()
    minimal = client.images.get(str(built.record("envrepo-minimal")["image"]))
    tutorial = client.images.get(str(built.record("envrepo-tutorial")["image"]))
    parent_layers = minimal.attrs["RootFS"]["Layers"]
    child_layers = tutorial.attrs["RootFS"]["Layers"]
    assert child_layers[: len(parent_layers)] == parent_layers
    assert len(child_layers) > len(parent_layers)
    assert tutorial.attrs["Size"] < 736_000_000
    pins = {
        **lock_pins(PROJECT / "environments/envrepo-minimal/requirements.lock"),
        **lock_pins(PROJECT / "environments/envrepo-tutorial/requirements.lock"),
    }
    for image in (minimal, tutorial):
        saved = b"".join(image.save(named=False))
        names = []
        import io

        with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
            for member in outer.getmembers():
                if member.name.endswith("layer.tar") or member.name.startswith("blobs/"):
                    handle = outer.extractfile(member)
                    if handle is None:
                        continue
                    try:
                        with tarfile.open(fileobj=handle) as layer:
                            names += layer.getnames()
                    except tarfile.ReadError:
                        continue
        assert names, "no layer was read"
        # Debian's python3-venv ships its own wheels under /usr/share/python-wheels; what
        # must never be in a layer is a file the lock downloaded.
        wheels = {
            Path(n).name.split("-")[0].lower().replace("_", "-") + "==" + Path(n).name.split("-")[1]
            for n in names
            if n.endswith(".whl")
        }
        locked = {f"{k}=={v}" for k, v in pins.items()}
        assert not wheels & locked, wheels & locked


def test_building_again_builds_nothing(built: Built) -> None:
    result = run_envrepo("build", "--push", "--registry", built.registry.host, cwd=built.root)
    assert result.code == 0, result.err
    assert result.err.splitlines()[-1] == (
        "envrepo build: 0 built, 3 already there, 0 failed, 0 skipped"
    )


def test_one_requirement_of_minimal_rebuilds_minimal_and_tutorial_only(
    built: Built, tmp_path: Path
) -> None:
    root = curated_repo(tmp_path / "changed")
    requirements = root / "environments/envrepo-minimal/requirements.txt"
    requirements.write_text(requirements.read_text().replace("wheel==0.45.1", "wheel==0.45.0"))
    locked = run_envrepo("lock", cwd=root)
    assert locked.code == 0, locked.err
    planned = run_envrepo("plan", "--format", "json", "--registry", built.registry.host, cwd=root)
    assert [(p["name"], p["wave"]) for p in json.loads(planned.out)] == [
        ("envrepo-minimal", 0),
        ("envrepo-tutorial", 1),
    ]
    matrix = json.loads(
        run_envrepo("plan", "--format", "matrix", "--registry", built.registry.host, cwd=root).out
    )
    assert [e["environment"] for e in matrix["include"]] == ["envrepo-minimal", "envrepo-tutorial"]
    result = run_envrepo(
        "build", "--changed", "--push", "--registry", built.registry.host, cwd=root
    )
    assert result.code == 0, result.err[-3000:]
    assert result.err.splitlines()[-1] == (
        "envrepo build: 2 built, 0 already there, 0 failed, 0 skipped"
    )
    # The tutorial's own packages did not change: their layers are reused, not installed or
    # compiled again.
    log = Path(
        str(
            json.loads(
                next((root / ".envrepo/builds").glob("envrepo-tutorial-*.json")).read_text()
            )["log"]
        )
    ).read_text()
    assert "compiled" not in log
    layer_lines = [line for line in log.splitlines() if line.startswith("layer ")]
    assert any("cached  envrepo: install scikit-learn-1.9.1" in line for line in layer_lines)
    assert all(" made " not in line for line in layer_lines)


def test_a_failing_smoke_test_means_no_tag_and_no_push(built: Built, scratch: Path) -> None:
    write_files(
        scratch,
        {
            "environments/breaks/environment.yaml": CHILD.format(name="breaks"),
            "environments/breaks/tests/test_fails.py": "raise SystemExit('the smoke test failed')\n",
            "environments/fine/environment.yaml": CHILD.format(name="fine"),
        },
    )
    result = run_envrepo("build", "--push", "--registry", built.registry.host, cwd=scratch)
    assert result.code == 1
    assert (
        "environments/breaks/tests: test_fails.py failed inside the image, so it is neither "
        "tagged nor pushed" in result.err
    )
    assert tags_of(built.registry.host, "breaks") == []
    assert local_tags("breaks") == []
    assert is_pushed(built.registry.host, "fine")
    assert "Traceback" not in result.err


def test_a_direct_package_that_does_not_import_fails_the_build_before_any_push(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    """With no tests folder: the build imports each direct package's top-level modules, network
    off. One that raises, or that takes the interpreter with it, is one line and no image;
    skip_imports names what may not be imported at build time."""
    incompatible = (
        "raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')\n"
    )
    wheels = {
        "noimport": make_wheel(tmp_path / "a", "brokenpkg", "1.0", module_text=incompatible),
        "crashes": make_wheel(
            tmp_path / "b", "crashpkg", "1.0", module_text="import os\nos.abort()\n"
        ),
    }
    for name, wheel in wheels.items():
        with_private_wheel(scratch, name, wheel, CHILD.format(name=name))
    host = built.registry.host
    result = run_envrepo("build", "noimport", "crashes", "--push", "--registry", host, cwd=scratch)
    assert result.code == 1, result.err[-2000:]
    lines = result.err.splitlines()
    assert (
        "environments/noimport: brokenpkg: import brokenpkg fails inside the image: ValueError: "
        "numpy.dtype size changed, may indicate binary incompatibility; change the pins (or list "
        "the module under skip_imports when it cannot be imported at build time)" in lines
    )
    assert any(
        line.startswith(
            "environments/crashes: crashpkg: import crashpkg fails inside the image: "
            "the interpreter died importing it (signal 6)"
        )
        for line in lines
    ), result.err
    assert "Traceback" not in result.err
    for name in wheels:
        assert tags_of(host, name) == []
        assert local_tags(name) == []
        assert not list((scratch / ".envrepo/builds").glob(f"{name}-*.json"))
    spec = scratch / "environments/noimport/environment.yaml"
    spec.write_text(spec.read_text() + "skip_imports: [brokenpkg]\n")
    assert run_envrepo("lock", "noimport", cwd=scratch).code == 0
    again = run_envrepo("build", "noimport", "--push", "--registry", host, cwd=scratch)
    assert again.code == 0, again.err[-2000:]
    assert is_pushed(host, "noimport")


def test_a_failing_dockerfile_step_skips_its_dependents(built: Built, scratch: Path) -> None:
    root_image = curated_root_image()
    write_files(
        scratch,
        {
            "environments/custom/environment.yaml": (
                'name: custom\nbase:\n  dockerfile: Dockerfile\npython: "3.11"\n'
                "user_managed: true\ninterpreter: /usr/bin/python3\n"
            ),
            "environments/custom/Dockerfile": f"FROM {root_image}\nRUN exit 3\n",
            "environments/above/environment.yaml": (
                'name: above\nbase:\n  environment: custom\npython: "3.11"\n'
            ),
        },
    )
    result = run_envrepo("build", "--push", "--registry", built.registry.host, cwd=scratch)
    assert result.code == 1
    # Every line of a failure names the environment it is about.
    assert (
        "environments/custom: the build failed: The command '/bin/sh -c exit 3' returned a "
        "non-zero code: 3" in result.err.splitlines()
    )
    assert "above: skipped: an environment it is built on failed" in result.err
    assert (
        tags_of(built.registry.host, "custom") == [] and tags_of(built.registry.host, "above") == []
    )


def test_a_file_whose_hash_does_not_match_the_lock_is_refused(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    from envrepo.lock import files as lock
    from support import make_wheel

    wheel = make_wheel(tmp_path / "w", "internal-tools", "1.0.0")
    with_private_wheel(scratch, "app", wheel, CHILD.format(name="app"))
    lock_file = scratch / "environments/app/requirements.lock"
    text = lock_file.read_text()
    good = text.split("--hash=sha256:")[1][:64]
    # Doctored with care, so that the header's body digest still matches: the installer's own
    # hash check is what refuses it.
    header, body = lock.split(text.replace(good, "0" * 64))
    header = [
        f"# body-digest: {lock.body_digest(body)}" if line.startswith("# body-digest") else line
        for line in header
    ]
    lock_file.write_text("\n".join(header) + "\n" + body)
    result = run_envrepo("build", "app", "--push", "--registry", built.registry.host, cwd=scratch)
    assert result.code == 1
    line = next(x for x in result.err.splitlines() if x.startswith("environments/app/"))
    assert line.startswith(
        "environments/app/requirements.lock: the locked files cannot be installed:"
    )
    assert "hash" in line.lower()
    assert tags_of(built.registry.host, "app") == []


def test_a_registry_that_is_down_is_one_line(scratch: Path) -> None:
    from registries import free_port

    closed = f"127.0.0.1:{free_port()}"
    result = run_envrepo("build", "--push", "--registry", closed, cwd=scratch)
    assert result.code == 1
    assert f"registry {closed} does not answer" in result.err
    assert "Traceback" not in result.err


def test_a_base_image_tag_is_locked_to_its_digest_and_a_new_digest_rebuilds(
    built: Built, scratch: Path
) -> None:
    client = docker.from_env()
    host = built.registry.host
    root_image = client.images.get(str(built.record("envrepo-bookworm")["image"]))
    minimal = client.images.get(str(built.record("envrepo-minimal")["image"]))
    root_image.tag(f"{host}/base/debian", "12")
    client.images.push(f"{host}/base/debian", tag="12")
    write_files(
        scratch,
        {
            "environments/on-image/environment.yaml": (
                f'name: on-image\nbase:\n  image: {host}/base/debian:12\npython: "3.11"\n'
                "user_managed: true\ninterpreter: /usr/bin/python3\n"
            ),
        },
    )
    missing = run_envrepo("validate", "environments/on-image", cwd=scratch)
    assert missing.code == 1
    assert (
        f"base.image: {host}/base/debian:12 is not resolved to a digest and has no lock "
        "(base-image.lock is missing)" in missing.out
    )
    assert run_envrepo("lock", "on-image", cwd=scratch).code == 0
    lock_file = scratch / "environments/on-image/base-image.lock"
    first = lock_file.read_text().splitlines()[-1]
    assert first == f"{host}/base/debian:12@{manifest_digest(host, 'base/debian', '12')}"
    built_once = run_envrepo("build", "on-image", "--push", "--registry", host, cwd=scratch)
    assert built_once.code == 0, built_once.err[-2000:]
    assert "assembled" in built_once.err and first in built_once.err
    hash_before = run_envrepo("hash", "on-image", cwd=scratch).out
    # The base image is patched: same tag, new digest.
    minimal.tag(f"{host}/base/debian", "12")
    client.images.push(f"{host}/base/debian", tag="12")
    assert run_envrepo("lock", "on-image", cwd=scratch).code == 0
    assert lock_file.read_text().splitlines()[-1] != first
    assert run_envrepo("hash", "on-image", cwd=scratch).out != hash_before
    planned = run_envrepo("plan", "--format", "json", "--registry", host, cwd=scratch)
    assert [p["name"] for p in json.loads(planned.out)] == ["on-image"]


def test_apt_packages_are_installed_without_network_and_no_deb_stays(
    built: Built, scratch: Path
) -> None:
    write_files(
        scratch,
        {
            "environments/native/environment.yaml": CHILD.format(name="native")
            + "apt: [libgomp1]\n",
            "environments/native/tests/test_gomp.py": (
                "import ctypes\nctypes.CDLL('libgomp.so.1')\nprint('libgomp loads')\n"
            ),
        },
    )
    result = run_envrepo(
        "build", "native", "--push", "--registry", built.registry.host, cwd=scratch
    )
    assert result.code == 0, result.err[-2000:]
    assert "test test_gomp.py: passed" in result.err
    listing = docker.from_env().containers.run(
        f"{built.registry.host}/native:{pushed_tag(scratch, 'native')}",
        ["sh", "-c", "ls /var/cache/apt/archives/ /var/lib/apt/lists/ | grep -c deb || true"],
        remove=True,
        network_disabled=True,
    )
    assert listing.decode().strip() == "0"


def test_a_conda_environment_is_linked_on_the_host_and_works_in_the_image(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    from support import index_channel, make_conda_package

    channel = tmp_path / "channel"
    make_conda_package(
        channel,
        "greeting-data",
        "1.0",
        files={"share/greeting.txt": b"hello from a conda package\n"},
    )
    make_conda_package(
        channel,
        "hello-tool",
        "1.0",
        ("greeting-data",),
        files={"bin/hello": b"#!/bin/sh\ncat /opt/env/share/greeting.txt\n"},
    )
    url = index_channel(channel)
    write_files(
        scratch,
        {
            "environments/tools/environment.yaml": (
                CHILD.format(name="tools") + "conda: conda.yaml\ninterpreter: /usr/bin/python3\n"
            ),
            "environments/tools/conda.yaml": f"channels: [{url}]\ndependencies: [hello-tool==1.0]\n",
            "environments/tools/tests/test_hello.py": (
                "import subprocess\n"
                "out = subprocess.run(['/opt/env/bin/hello'], capture_output=True, text=True, check=True)\n"
                "assert out.stdout == 'hello from a conda package\\n', out.stdout\n"
            ),
        },
    )
    assert run_envrepo("lock", "tools", cwd=scratch).code == 0
    commit(scratch, "tools")
    result = run_envrepo("build", "tools", "--push", "--registry", built.registry.host, cwd=scratch)
    assert result.code == 0, result.err[-2000:]
    assert "envrepo: conda hello-tool-1.0-0" in result.err
    assert "test test_hello.py: passed" in result.err
    # What conda linked is the version's package list, checked against conda.lock.
    index = tmp_path / "index"
    published = run_envrepo(
        "publish", "--to", index, "--registry", built.registry.host, cwd=scratch
    )
    assert published.code == 0, published.err[-2000:]
    version = json.loads((index / "environments/tools/1/version.json").read_text())
    conda = version["packages"]["conda"]
    assert sorted(conda) == ["greeting-data", "hello-tool"]
    assert conda["hello-tool"]["purl"] == "pkg:conda/hello-tool@1.0"
    assert conda["hello-tool"]["hashes"][0].startswith("sha256:")


def test_a_dockerfile_base_is_built_and_the_environment_goes_on_top(
    built: Built, scratch: Path
) -> None:
    root_image = curated_root_image()
    write_files(
        scratch,
        {
            "environments/custom/environment.yaml": (
                'name: custom\nbase:\n  dockerfile: Dockerfile\npython: "3.11"\n'
                "variables: {GREETING: hello}\n"
            ),
            "environments/custom/Dockerfile": (f"FROM {root_image}\nCOPY motd.txt /etc/motd.txt\n"),
            "environments/custom/motd.txt": "built from the environment's own Dockerfile\n",
            "environments/custom/tests/test_base.py": (
                "import os, sys\n"
                "assert open('/etc/motd.txt').read().startswith('built from'), 'no motd'\n"
                "assert os.environ['GREETING'] == 'hello'\n"
                "assert sys.prefix == '/opt/env', sys.prefix\n"
            ),
        },
    )
    result = run_envrepo(
        "build", "custom", "--push", "--registry", built.registry.host, cwd=scratch
    )
    assert result.code == 0, result.err[-2000:]
    assert "test test_base.py: passed" in result.err


def docker_built_and_run(context: Path, script: str) -> str:
    """What `script` prints in the image `docker build` makes of `context` (then removed)."""
    client = docker.from_env()
    tag = f"envrepo-test-render-{context.parent.name.lower()}:1"
    try:
        client.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
        out: bytes = client.containers.run(
            tag, ["sh", "-c", script], remove=True, network_disabled=True
        )
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)
    return out.decode()


def test_a_conda_file_with_its_own_python_scaffolds_locks_and_renders_a_context_docker_builds(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    """No real conda channel is reachable here: the channel is the test's own, its python a
    stand-in that says its version."""
    from support import index_channel, make_conda_package

    channel = tmp_path / "channel"
    make_conda_package(
        channel, "python", "3.10.14", files={"bin/python3.10": b"#!/bin/sh\necho 3.10.14\n"}
    )
    make_conda_package(
        channel,
        "hello-tool",
        "1.0",
        ("python >=3.10",),
        files={"bin/hello": b"#!/bin/sh\necho hello from conda\n"},
    )
    url = index_channel(channel)
    shutil.copytree(
        PROJECT / "environments/envrepo-minimal", scratch / "environments/envrepo-minimal"
    )
    source = tmp_path / "environment.yml"
    source.write_text(
        f"name: legacy\nchannels: [{url}]\ndependencies:\n  - python=3.10\n  - hello-tool==1.0\n"
    )
    made = run_envrepo("scaffold", "legacy", "--from-conda", source, cwd=scratch)
    assert made.code == 0, made.err
    assert (
        "chose base envrepo-bookworm: a conda environment brings its own python at /opt/env, "
        "and envrepo-minimal has a virtual environment there; envrepo-bookworm is the nearest "
        "base under it without one\n"
    ) in made.err
    spec = yaml.safe_load((scratch / "environments/legacy/environment.yaml").read_text())
    assert spec["base"] == {"environment": "envrepo-bookworm"}
    assert spec["python"] == "3.10"
    locked = run_envrepo("lock", "legacy", cwd=scratch)
    assert locked.code == 0, locked.err
    conda_lock = (scratch / "environments/legacy/conda.lock").read_text()
    assert "python-3.10.14-0.tar.bz2#sha256=" in conda_lock
    assert run_envrepo("validate", "legacy", "--strict", cwd=scratch).out.splitlines() == [
        "environments/legacy: warning: 1 input is not pinned to one version (python); "
        "conda.lock pins them, and a re-lock may move them: review the lock's diff, or pin "
        "them with == in the input"
    ]
    dockerfile = run_envrepo("render", "legacy", "--registry", built.registry.host, cwd=scratch).out
    assert f"FROM {built.registry.host}/envrepo-bookworm:h-" in dockerfile
    assert "COPY conda-prefix/ /opt/env/" in dockerfile
    assert "venv" not in dockerfile
    context = tmp_path / "context"
    rendered = run_envrepo(
        "render", "legacy", "--context", context, "--registry", built.registry.host, cwd=scratch
    )
    assert rendered.code == 0, rendered.err
    assert (context / "Dockerfile").read_text() == dockerfile
    out = docker_built_and_run(
        context, "/opt/env/bin/python3.10 && hello && ls /opt/env/conda-meta"
    )
    assert out.splitlines()[:2] == ["3.10.14", "hello from conda"]
    assert "python-3.10.14-0.json" in out
    again = run_envrepo("render", "legacy", "--context", context, cwd=scratch)
    assert again.code == 2
    assert again.err == f"{context}: already exists; pass a folder that does not exist yet\n"


def test_a_package_published_only_as_source_becomes_a_private_wheel_and_is_built(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    from support import make_index, make_sdist

    sdist = make_sdist(tmp_path / "files", "legacy", "3.2")
    url = make_index(tmp_path / "simple", [], (sdist,))
    env = {"UV_DEFAULT_INDEX": url, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    write_files(
        scratch,
        {
            "environments/dl/environment.yaml": CHILD.format(name="dl") + "pip: requirements.txt\n",
            "environments/dl/requirements.txt": "legacy==3.2\n",
            "environments/dl/tests/test_legacy.py": (
                "import legacy\nassert legacy.__version__ == '3.2', legacy.__version__\n"
            ),
        },
    )
    assert run_envrepo("lock", "dl", cwd=scratch, env=env).code == 2
    # A lock that pins the sdist (as one written before lock looked for wheels did): the
    # build names the remedy.
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    write_fresh_lock(scratch, "dl", f"legacy==3.2 \\\n    --hash=sha256:{digest}\n")
    commit(scratch, "dl, by hand")
    old = run_envrepo("build", "dl", cwd=scratch, env=env)
    assert old.code == 1
    assert (
        "legacy==3.2 is published only as source: run envrepo lock dl --build-wheels to build "
        "its wheel into the environment's wheels/"
    ) in old.err, old.err[-2000:]
    (scratch / "environments/dl/requirements.lock").unlink()
    made = run_envrepo("lock", "dl", "--build-wheels", cwd=scratch, env=env)
    assert made.code == 0, made.err
    commit(scratch, "dl")
    result = run_envrepo("build", "dl", "--push", "--registry", built.registry.host, cwd=scratch)
    assert result.code == 0, result.err[-2000:]
    assert "test test_legacy.py: passed" in result.err


def test_render_context_of_a_venv_environment_builds_with_docker_build(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    from support import make_wheel

    make_wheel(scratch / "environments/app/wheels", "inhouse", "0.2.0")
    write_files(
        scratch,
        {
            "environments/app/environment.yaml": CHILD.format(name="app")
            + "variables: {MODE: a$b}\n"
        },
    )
    locked = run_envrepo("lock", "app", cwd=scratch)
    assert locked.code == 0, locked.err
    context = tmp_path / "context"
    rendered = run_envrepo(
        "render", "app", "--context", context, "--registry", built.registry.host, cwd=scratch
    )
    assert rendered.code == 0, rendered.err
    dockerfile = (context / "Dockerfile").read_text()
    assert "COPY env/site-packages/ /opt/env/lib/python3.11/site-packages/" in dockerfile
    assert (context / "env/site-packages/inhouse/__init__.py").is_file()
    out = docker_built_and_run(
        context,
        'python -c "import inhouse, sys; print(inhouse.__version__, sys.prefix)"; echo "$MODE"',
    )
    assert out.splitlines() == ["0.2.0 /opt/env", "a$b"]
