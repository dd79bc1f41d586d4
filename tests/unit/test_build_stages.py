"""Pure parts of building: the rendered Dockerfile, layers, chain IDs, image config, refs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from envrepo.engine.reference import DOCKER_HUB, split_image
from envrepo.errors import EnvrepoError
from envrepo.hashing import spec_hash
from envrepo.image.assemble import chain_ids, environment, image_config
from envrepo.image.bytecode import Job, compile_on_host, pyc_path, wanted
from envrepo.image.layers import Layer, Package, package_layers, venv_layer, write_layer
from envrepo.image.render import Layout, dockerfile
from envrepo.image.stage import Wanted, packages
from envrepo.lock.locked import read_locked
from envrepo.repo.config import open_repository
from envrepo.repo.spec import Spec, load_catalog
from support import RepoMaker, write_files, write_fresh_lock

SITE = PurePosixPath("/opt/env/lib/python3.11/site-packages")


def test_render_layers_base_venv_packages_variables(make_repo: RepoMaker) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/root/environment.yaml": (
                "name: root\nbase:\n  bootstrap: {suite: bookworm}\nuser_managed: true\n"
            ),
            "environments/app/environment.yaml": (
                'name: app\nbase:\n  environment: root\npython: "3.11"\npip: r.txt\n'
                "variables: {B: '2', A: 'one two'}\n"
            ),
            "environments/app/r.txt": "x==1\n",
        },
    )
    catalog = load_catalog(open_repository(root, explicit=True)[0])
    text = dockerfile(
        catalog.specs["app"],
        "reg/root@sha256:00",
        catalog.specs["root"],
        Layout(("site-packages", "bin")),
    )
    assert text.splitlines()[2:] == [
        "FROM reg/root@sha256:00",
        'RUN ["/usr/bin/python3", "-m", "venv", "--without-pip", "/opt/env"]',
        "COPY env/site-packages/ /opt/env/lib/python3.11/site-packages/",
        "COPY env/bin/ /opt/env/bin/",
        'RUN ["/opt/env/bin/python", "-m", "compileall", "-q", "-x", "/tests/", '
        '"/opt/env/lib/python3.11/site-packages"]',
        "ENV VIRTUAL_ENV=/opt/env PATH=/opt/env/bin:$PATH",
        'ENV A="one two"',
        'ENV B="2"',
    ]


def installed(target: Path, name: str, files: dict[str, str]) -> None:
    dist = f"{name}-1.0.dist-info"
    record = [f"{path},," for path in files] + [f"{dist}/RECORD,,"]
    write_files(target, {**files, f"{dist}/RECORD": "\n".join(record) + "\n"})


def test_package_layers_one_per_distribution_with_bytecode_and_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tag = "cpython-311"
    alpha_files = {
        "alpha/__init__.py": "A = 1\n",
        f"alpha/__pycache__/__init__.{tag}.pyc": "compiled",
        "alpha/tests/test_alpha.py": "def test(): pass\n",
        "bin/alpha": "#!x\n",
    }
    for copy in ("one", "two"):
        target = tmp_path / copy
        installed(target, "alpha", alpha_files)
        installed(target, "beta", {"beta/__init__.py": "B = 2\n" * 100})
        (target / ".lock").write_text("uv's own lock")
    packages = [Package("beta", "1.0", "key-beta"), Package("alpha", "1.0", "key-alpha")]
    first = package_layers(
        packages, tmp_path / "one", SITE, direct={"alpha"}, cache_tag=tag, log=pytest.fail
    )
    assert [layer.created_by for layer in first] == [
        "envrepo: install beta-1.0",
        "envrepo: install alpha-1.0",
    ]
    with tarfile.open(first[1].path) as tar:
        names = tar.getnames()
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    assert "opt/env/bin/alpha" in names
    assert f"opt/env/lib/python3.11/site-packages/alpha/__pycache__/__init__.{tag}.pyc" in names
    assert "opt/env/lib/python3.11/site-packages/alpha/tests/test_alpha.py" in names
    assert first[0].diff_id == "sha256:" + hashlib.sha256(first[0].path.read_bytes()).hexdigest()
    # Made once: the same keys find the same layers with nothing staged at all.
    again = package_layers(packages, None, SITE, direct={"alpha"}, cache_tag=tag, log=pytest.fail)
    assert [layer.diff_id for layer in again] == [layer.diff_id for layer in first]
    assert [layer.made for layer in first] == [True, True]
    assert [layer.made for layer in again] == [False, False]
    # A new key (a changed pin) is made from what is staged now; the other layer stays.
    (tmp_path / "two/beta/__init__.py").write_text("B = 3\n")
    changed = package_layers(
        [Package("beta", "1.1", "key-beta-1.1"), packages[1]],
        tmp_path / "two",
        SITE,
        direct={"alpha"},
        cache_tag=tag,
        log=pytest.fail,
    )
    assert changed[0].diff_id != first[0].diff_id
    assert changed[1].diff_id == first[1].diff_id


def test_more_distributions_than_layers_share_one_merged_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("envrepo.image.layers.MAX_PACKAGE_LAYERS", 3)
    names = ["p1", "p2", "p3", "p4", "p5"]
    for name in names:
        installed(
            tmp_path / "t", name, {f"{name}/__init__.py": f"{name} = 1\n" * (10 - int(name[1]))}
        )
    layers = package_layers(
        [Package(n, "1.0", f"key-{n}") for n in names],
        tmp_path / "t",
        SITE,
        cache_tag=None,
        log=pytest.fail,
    )
    assert len(layers) == 3
    assert layers[2].created_by == "envrepo: install p3-1.0, p4-1.0, p5-1.0"
    with tarfile.open(layers[2].path) as tar:
        merged = tar.getnames()
    assert [n for n in merged if n.endswith("__init__.py")] == [
        f"opt/env/lib/python3.11/site-packages/{n}/__init__.py" for n in ("p3", "p4", "p5")
    ]
    assert len(merged) == len(set(merged))


def test_bytecode_made_on_the_host_is_what_python_loads(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    module = "VALUE = 'compiled'\n"
    write_files(
        staging,
        {
            "target/pkg/__init__.py": "",
            "target/pkg/mod.py": module,
            "target/pkg/bad.py": "def (:\n",
        },
    )
    shown = "/opt/env/lib/python3.11/site-packages/pkg/mod.py"
    compile_on_host(
        staging, [Job("target/pkg/mod.py", shown), Job("target/pkg/bad.py", "/x/pkg/bad.py")]
    )
    cache = staging / "target/pkg/__pycache__"
    assert sorted(p.name for p in cache.iterdir()) == [f"mod.{sys.implementation.cache_tag}.pyc"]
    assert not (staging / "envrepo-compile.json").exists()
    # As in a layer, every file has mtime 0. A source of the same size that says something
    # else is not read: Python trusts the bytecode and compiles nothing.
    source = staging / "target/pkg/mod.py"
    source.write_text(module.replace("compiled", "source!!"))
    for path in (source, staging / "target/pkg/__init__.py"):
        os.utime(path, (0, 0))
    done = subprocess.run(
        [
            sys.executable,
            "-B",
            "-c",
            "import pkg.mod as m; print(m.VALUE)",
        ],
        cwd=staging / "target",
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "compiled"


def app_with_pip(make_repo: RepoMaker) -> Path:
    """A repository with one environment, `app`, whose requirements name alpha==1.0."""
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": (
                "name: app\nbase:\n  bootstrap: {suite: bookworm}\n"
                'python: "3.11"\npip: requirements.txt\n'
            ),
            "environments/app/requirements.txt": "alpha==1.0\n",
        },
    )
    return root


def locked(spec: Spec, site: PurePosixPath, cache_tag: str | None) -> list[Wanted]:
    """The pip lock's packages as a build takes them, each with its layer's key."""
    return packages(read_locked(spec, spec_hash(spec, None), None), site, cache_tag)


def test_each_lock_entry_for_the_target_has_a_layer_key(make_repo: RepoMaker) -> None:
    root = app_with_pip(make_repo)
    entry = "alpha==1.0 \\\n    --hash=sha256:{}\n"
    other = 'beta==2.0 ; sys_platform == "win32" \\\n    --hash=sha256:' + "b" * 64 + "\n"
    spec = write_fresh_lock(root, "app", entry.format("a" * 64) + other)
    ready = read_locked(spec, spec_hash(spec, None), None)
    assert ready.pip_lock == "environments/app/requirements.lock"
    [alpha] = locked(spec, SITE, "cpython-311")
    assert (alpha.name, alpha.version) == ("alpha", "1.0")
    assert alpha.key == locked(spec, SITE, "cpython-311")[0].key
    assert alpha.key != locked(spec, SITE, None)[0].key
    spec = write_fresh_lock(root, "app", entry.format("c" * 64))
    assert alpha.key != locked(spec, SITE, "cpython-311")[0].key


def test_a_lock_entry_that_is_not_an_exact_pin_is_one_line(make_repo: RepoMaker) -> None:
    root = app_with_pip(make_repo)
    spec = write_fresh_lock(root, "app", "alpha>=1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    with pytest.raises(EnvrepoError) as raised:
        locked(spec, SITE, "cpython-311")
    assert str(raised.value) == (
        "environments/app/requirements.lock: 'alpha>=1.0' is not an exact pin as envrepo lock "
        "writes them; run envrepo lock app --all"
    )


def test_bytecode_skips_test_suites_and_names_files_by_cache_tag() -> None:
    assert wanted("pkg/mod.py")
    assert not wanted("pkg/tests/test_mod.py")
    assert not wanted("pkg/data.txt")
    assert pyc_path("pkg/mod.py", "cpython-311") == "pkg/__pycache__/mod.cpython-311.pyc"


def test_venv_layer_points_at_the_base_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    layer = venv_layer("/usr/bin/python3.11", "3.11.2", SITE, pytest.fail)
    with tarfile.open(layer.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["opt/env/bin/python"].linkname == "/usr/bin/python3.11"
        assert members["opt/env/bin/python3"].linkname == "python"
        assert members["opt/env/lib/python3.11/site-packages"].isdir()
        config = tar.extractfile("opt/env/pyvenv.cfg")
        assert config is not None
        assert b"home = /usr/bin\n" in config.read()


def test_chain_ids_follow_docker() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, expected]


def test_image_config_extends_path_and_keeps_the_base(tmp_path: Path) -> None:
    layer_file = tmp_path / "l.tar"
    with layer_file.open("wb") as out:
        write_layer(out, {}, extra={"x": b"1"})
    layer = Layer(layer_file, "sha256:" + "c" * 64, 1, "test")
    env = environment(
        ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"],
        "/opt/env/bin",
        {"VIRTUAL_ENV": "/opt/env", "A": "1"},
    )
    assert env == ["PATH=/opt/env/bin:/usr/bin:/bin", "LANG=C.UTF-8", "VIRTUAL_ENV=/opt/env", "A=1"]
    base = {
        "Architecture": "amd64",
        "Os": "linux",
        "Config": {"Cmd": ["bash"], "Labels": {"keep": "me"}, "Env": []},
        "RootFS": {"Layers": ["sha256:" + "d" * 64]},
    }
    config = image_config(base, [layer], env, {"dev.envrepo.name": "app"})
    assert config["config"]["Cmd"] == ["bash"]
    assert config["config"]["Labels"] == {"keep": "me", "dev.envrepo.name": "app"}
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "d" * 64, "sha256:" + "c" * 64]


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        ("python:3.11-slim", (DOCKER_HUB, "library/python", "3.11-slim")),
        ("team/base", (DOCKER_HUB, "team/base", "latest")),
        ("localhost:5000/a/b:1", ("localhost:5000", "a/b", "1")),
        ("registry.example/x/y", ("registry.example", "x/y", "latest")),
        ("host:5000/team/sub/env:h-1@sha256:ab", ("host:5000", "team/sub/env", "h-1")),
        ("ghcr.io/org/env@sha256:ab", ("ghcr.io", "org/env", "latest")),
    ],
)
def test_image_references(reference: str, parts: tuple[str, str, str]) -> None:
    assert split_image(reference) == parts


def test_debian_mirror_comes_from_the_hosts_apt_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envrepo.image import bootstrap
    from envrepo.repo.spec import Bootstrap

    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n"
    )
    monkeypatch.setattr(bootstrap, "SOURCES", tmp_path / "none.list")
    monkeypatch.setattr(bootstrap, "SOURCES_DIR", sources)
    monkeypatch.delenv("ENVREPO_DEBIAN_MIRROR", raising=False)
    assert bootstrap.mirror(Bootstrap("bookworm")) == "http://mirror.invalid/debian"
    monkeypatch.setenv("ENVREPO_DEBIAN_MIRROR", "http://other.invalid/debian")
    assert bootstrap.mirror(Bootstrap("bookworm")) == "http://other.invalid/debian"
    monkeypatch.delenv("ENVREPO_DEBIAN_SNAPSHOT_MIRROR", raising=False)
    with pytest.raises(EnvrepoError) as raised:
        bootstrap.mirror(Bootstrap("bookworm", snapshot="20250101T000000Z"))
    assert "ENVREPO_DEBIAN_SNAPSHOT_MIRROR" in raised.value.lines[0]


def test_bootstrap_identity_leaves_the_mirror_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from envrepo.image import bootstrap
    from envrepo.repo.spec import Bootstrap

    boot = Bootstrap("bookworm", "minbase", ("python3", "ca-certificates"))
    monkeypatch.setenv("ENVREPO_DEBIAN_MIRROR", "http://a.invalid/debian")
    first = bootstrap.image_tag(boot)
    monkeypatch.setenv("ENVREPO_DEBIAN_MIRROR", "http://b.invalid/debian")
    assert bootstrap.image_tag(boot) == first
    assert (
        bootstrap.image_tag(Bootstrap("bookworm", "minbase", ("ca-certificates", "python3")))
        == first
    )
    assert bootstrap.image_tag(Bootstrap("trixie", "minbase", boot.packages)) != first


def test_the_suite_of_a_base_image() -> None:
    from envrepo.image.apt import _suite

    assert _suite(b'PRETTY_NAME="Debian GNU/Linux 12"\nVERSION_CODENAME=bookworm\n') == "bookworm"
    with pytest.raises(EnvrepoError):
        _suite(b"NAME=Alpine\n")


@pytest.mark.parametrize("damage", ["truncated", "a flipped bit"])
def test_a_damaged_cached_layer_is_made_again_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    installed(tmp_path / "t", "alpha", {"alpha/__init__.py": "A = 1\n" * 100})
    packages = [Package("alpha", "1.0", "key-alpha")]
    [first] = package_layers(packages, tmp_path / "t", SITE, log=pytest.fail)
    data = bytearray(first.path.read_bytes())
    if damage == "truncated":
        first.path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 3] ^= 0x01
        first.path.write_bytes(bytes(data))
    warnings: list[str] = []
    [again] = package_layers(packages, tmp_path / "t", SITE, log=warnings.append)
    assert warnings == [
        f"warning: the layer cache's {first.path} does not match its recorded digest; made again"
    ]
    assert again.made and again.diff_id == first.diff_id
    assert again.diff_id == "sha256:" + hashlib.sha256(again.path.read_bytes()).hexdigest()


def test_a_layer_is_compressed_once_to_a_gzip_that_gives_it_back(tmp_path: Path) -> None:
    import gzip
    import io

    from envrepo.image import blobs

    tar = tmp_path / "layer.tar"
    tar.write_bytes(os.urandom(3 << 20) + bytes(2 << 20))
    diff_id = "sha256:" + hashlib.sha256(tar.read_bytes()).hexdigest()
    made = blobs.of_layer(diff_id, tar, print)
    assert gzip.decompress(made.path.read_bytes()) == tar.read_bytes()
    assert made.digest == "sha256:" + hashlib.sha256(made.path.read_bytes()).hexdigest()
    assert made.size == made.path.stat().st_size < tar.stat().st_size
    assert blobs.of_layer(diff_id, tar, print) == made  # kept: the same file, not made again
    assert blobs.compress(io.BytesIO(b"another layer"), {diff_id}) is None
    made.path.write_bytes(b"damaged")
    warnings: list[str] = []
    assert blobs.cached(diff_id, warnings.append) is None
    assert "does not match its recorded digest" in warnings[0]


def test_the_plan_becomes_one_job_matrix_per_wave_job() -> None:
    from envrepo.errors import EnvrepoError
    from envrepo.image.plan import Planned, wave_outputs

    planned = [Planned("a", "1" * 64, 0, "new"), Planned("b", "2" * 64, 1, "parent")]
    lines = wave_outputs(planned, 3)
    assert [line.split("=", 1)[0] for line in lines] == ["wave0", "wave1", "wave2"]
    assert json.loads(lines[1].split("=", 1)[1]) == {
        "include": [{"environment": "b", "hash": "222222222222", "wave": 1}]
    }
    assert json.loads(lines[2].split("=", 1)[1]) == {"include": []}
    with pytest.raises(EnvrepoError) as more:
        wave_outputs(planned, 1)
    assert more.value.lines == (
        "the plan has 2 waves and the workflow 1 wave jobs; add jobs wave1..wave1 to the "
        "workflow, and pass --waves 2",
    )
