"""The supply chain against real package indexes served on loopback: an "evil" index offers a
private name at a higher version, at the same version as an sdist whose build code leaves a
marker, and as a wheel with another hash. A private name resolves to its owner's file for the
owner, a child, a grandchild and a consumer on a published base, and is never asked of an
index; no package's code runs on this machine; what has only source is built in the base
image with the network off."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from test_lock import SPEC, env_spec, pins

from envrepo.index.store import IndexFolder
from envrepo.publish import publisher
from registries import Certificate, serving
from support import (
    CHILD,
    GOOD,
    NOW,
    Built,
    RepoMaker,
    commit,
    make_sdist,
    make_wheel,
    published,
    release,
    release_packages,
    run_envrepo,
    snapshot,
    with_private_wheel,
    write_files,
)


@dataclass
class PackageIndex:
    """A PEP 503 index of files served over HTTP(S) on loopback; every request it answered is
    in `asked` as (path, Authorization header or None)."""

    root: Path
    url: str = ""
    asked: list[tuple[str, str | None]] = field(default_factory=list)

    def names(self) -> set[str]:
        return {path.split("/")[2] for path, _ in self.asked if path.startswith("/simple/")}


def _page(root: Path, files: list[Path]) -> None:
    by_name: dict[str, list[Path]] = {}
    for path in files:
        stem = path.name.split("-")[0] if path.suffix == ".whl" else path.name.rsplit("-", 1)[0]
        by_name.setdefault(stem.lower().replace("_", "-"), []).append(path)
    for name, found in by_name.items():
        links = "".join(
            f'<a href="../../files/{p.name}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()}">'
            f"{p.name}</a>\n"
            for p in found
        )
        page = root / "simple" / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    (root / "files").mkdir(exist_ok=True)
    for path in files:
        (root / "files" / path.name).write_bytes(path.read_bytes())


@contextmanager
def package_index(
    root: Path,
    files: list[Path],
    tls: Certificate | None = None,
    authorization: str | None = None,
    address: str = "127.0.0.1",
) -> Iterator[PackageIndex]:
    """`files` as a package index on a loopback `address` (over TLS with `tls`, asking for
    `authorization` when given)."""
    _page(root, files)
    index = PackageIndex(root)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            given = self.headers.get("Authorization")
            index.asked.append((self.path, given))
            if authorization and given != authorization:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler, tls, address) as host:
        index.url = f"{'https' if tls else 'http'}://{host}/simple"
        yield index


@dataclass
class Hostile:
    """Two evil indexes (the default and a user's extra one), the private wheel, the markers'
    folder, and the environment that points uv at them."""

    default: PackageIndex
    extra: PackageIndex
    private: Path
    markers: Path
    env: dict[str, str]


@contextmanager
def hostile(tmp_path: Path) -> Iterator[Hostile]:
    files = tmp_path / "files"
    evil = [
        make_wheel(files / "higher", "acme", "9.0.0"),
        make_sdist(files / "same", "acme", "0.1.0"),
        make_wheel(files / "other", "acme", "0.1.0", requires=("evil-payload",)),
        make_wheel(files / "public", "alpha", "1.0.0"),
        make_sdist(files / "source", "legacy", "3.2"),
        make_sdist(files / "source", "native", "2.0", "cp311-cp311-linux_x86_64"),
    ]
    markers = tmp_path / "markers"
    markers.mkdir()
    with ExitStack() as stack:
        default = stack.enter_context(package_index(tmp_path / "evil-default", evil))
        extra = stack.enter_context(package_index(tmp_path / "evil-extra", evil))
        env = {
            "UV_DEFAULT_INDEX": default.url,
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "ENVREPO_TEST_MARKERS": str(markers),
        }
        private = make_wheel(tmp_path / "private", "acme", "0.1.0")
        yield Hostile(default, extra, private, markers, env)


def _owner_child_grandchild(root: Path, private: Path) -> None:
    write_files(
        root,
        {
            "environments/priv/environment.yaml": env_spec("priv", extra="pip: requirements.txt\n"),
            "environments/priv/requirements.txt": "acme\nalpha\n",
            f"environments/priv/wheels/{private.name}": private.read_bytes(),
            "environments/child/environment.yaml": SPEC.format(
                name="child", base="environment: priv"
            )
            + "pip: requirements.txt\n",
            "environments/child/requirements.txt": "acme\n",
            "environments/grandchild/environment.yaml": SPEC.format(
                name="grandchild", base="environment: child"
            )
            + "pip: requirements.txt\n",
            "environments/grandchild/requirements.txt": "Acme==0.1.0\n",
        },
    )


def _locks(root: Path) -> dict[str, str]:
    return {
        path.parent.name: path.read_text()
        for path in sorted(root.glob("environments/*/requirements.lock"))
    }


def test_a_private_name_is_the_owners_file_for_every_environment_built_on_it(
    make_repo: RepoMaker, tmp_path: Path
) -> None:
    with hostile(tmp_path) as evil:
        root = make_repo("")
        _owner_child_grandchild(root, evil.private)
        result = run_envrepo("lock", "--all", cwd=root, env=evil.env)
        assert result.code == 0, result.err
        digest = hashlib.sha256(evil.private.read_bytes()).hexdigest()
        owner = (root / "environments/priv/requirements.lock").read_text()
        assert f"acme==0.1.0 \\\n    --hash=sha256:{digest}\n" in owner
        # The children add nothing of their own: acme is the base's file, in the base's image.
        for name in ("child", "grandchild"):
            assert pins(root / f"environments/{name}/requirements.lock") == []
        first = _locks(root)

        # A user's extra index, with the strategy that takes the best version anywhere.
        with_extra = {
            **evil.env,
            "UV_INDEX": evil.extra.url,
            "UV_INDEX_STRATEGY": "unsafe-best-match",
        }
        for lock in root.glob("environments/*/requirements.lock"):
            lock.unlink()
        again = run_envrepo("lock", "--all", cwd=root, env=with_extra)
        assert again.code == 0, again.err
        assert _locks(root) == first

        # A consumer on a published version of the owner: the index records acme's file.
        packages = release_packages(alpha="1.0.0")
        packages["pip"]["acme"] = {
            "version": "0.1.0",
            "purl": f"pkg:generic/acme@0.1.0?checksum=sha256:{digest}",
            "hashes": [f"sha256:{digest}"],
        }
        index = tmp_path / "index"
        published = replace(release("priv", 1), packages=packages)
        publisher.apply(IndexFolder(index), [published], (), NOW)
        consumer = make_repo("")
        write_files(
            consumer,
            {
                "environments/report/environment.yaml": (
                    "name: report\nbase:\n  published:\n    environment: priv@1\n"
                    f'    index: {index}\npython: "3.11"\npip: requirements.txt\n'
                ),
                "environments/report/requirements.txt": "acme\nalpha\n",
            },
        )
        consumed = run_envrepo("lock", "report", cwd=consumer, env=with_extra)
        assert consumed.code == 0, consumed.err
        base_lock = (consumer / "environments/report/published-base.lock").read_text()
        assert f"# private: acme==0.1.0 sha256:{digest}\n" in base_lock
        assert pins(consumer / "environments/report/requirements.lock") == []

        # Another version of a private name is the base-pin line, naming the owner.
        (root / "environments/grandchild/requirements.txt").write_text("acme==9.0.0\n")
        other = run_envrepo("lock", "grandchild", cwd=root, env=with_extra)
        assert other.code == 2
        assert "base environment priv pinned acme==0.1.0" in other.err.splitlines()[0]

        # No index was ever asked for the private name, and no package's code ran here.
        assert "acme" not in evil.default.names() | evil.extra.names()
        assert "alpha" in evil.default.names()
        assert list(evil.markers.iterdir()) == []


def _built_where(wheel: Path, name: str) -> dict[str, object]:
    """What the test backend recorded in the wheel about its build (read, not run)."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"{name}/__init__.py").decode()
    namespace: dict[str, object] = {}
    exec(compile(text, str(wheel), "exec"), namespace)  # the test's own file, not a package's
    built = namespace["BUILT"]
    assert isinstance(built, dict)
    return built


def _c_extension(folder: Path) -> Path:
    """An sdist of a C extension built by setuptools: it needs a compiler in its builder."""
    members = {
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=68"]\n'
            'build-backend = "setuptools.build_meta"\n'
            '[project]\nname = "speedup"\nversion = "1.0"\n'
        ),
        "setup.py": (
            "from setuptools import Extension, setup\n"
            'setup(ext_modules=[Extension("speedup", ["speedup.c"])])\n'
        ),
        "speedup.c": "#include <Python.h>\n",
        "PKG-INFO": "Metadata-Version: 2.1\nName: speedup\nVersion: 1.0\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "speedup-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"speedup-1.0/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_source_only_dependency_is_refused_then_built_in_the_base_image_offline(
    scratch: Path, tmp_path: Path
) -> None:
    with hostile(tmp_path) as evil:
        write_files(
            scratch,
            {
                "environments/dl/environment.yaml": CHILD.format(name="dl")
                + "pip: requirements.txt\n",
                "environments/dl/requirements.txt": "legacy==3.2\nalpha==1.0.0\n",
                "environments/cc/environment.yaml": CHILD.format(name="cc")
                + "pip: requirements.txt\n",
                "environments/cc/requirements.txt": "native==2.0\n",
            },
        )
        said = run_envrepo("lock", "dl", cwd=scratch, env=evil.env)
        assert said.code == 2, said.err
        assert said.err.splitlines()[0] == (
            "environments/dl/requirements.lock: legacy 3.2 is published only as source, and an "
            "image installs wheels only; run envrepo lock dl --build-wheels to build its wheel "
            "in its base image into environments/dl/wheels/, or require a version with wheels"
        )
        assert not (scratch / "environments/dl/requirements.lock").exists()

        made = run_envrepo("lock", "dl", "--build-wheels", cwd=scratch, env=evil.env)
        assert made.code == 0, made.err
        wheel = scratch / "environments/dl/wheels/legacy-3.2-py3-none-any.whl"
        # Built in envrepo-bookworm's image by `nobody`, with no network but loopback.
        assert _built_where(wheel, "legacy") == {"uid": 65534, "interfaces": ["lo"]}
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lock = (scratch / "environments/dl/requirements.lock").read_text()
        assert f"legacy==3.2 \\\n    --hash=sha256:{digest}\n" in lock
        assert pins(scratch / "environments/dl/requirements.lock") == [
            "alpha==1.0.0",
            "legacy==3.2",
        ]
        assert run_envrepo("validate", "dl", cwd=scratch).out == ""

        # A platform wheel built in the image is for the image's own python and platform.
        native = run_envrepo("lock", "cc", "--build-wheels", cwd=scratch, env=evil.env)
        assert native.code == 0, native.err
        assert [p.name for p in (scratch / "environments/cc/wheels").iterdir()] == [
            "native-2.0-cp311-cp311-linux_x86_64.whl"
        ]
        assert list(evil.markers.iterdir()) == []

        # A C extension needs a compiler, and envrepo-bookworm has none: one line. Its build
        # requirement (setuptools) comes from the user's own index as a hash-checked wheel.
        with package_index(tmp_path / "c-index", [_c_extension(tmp_path / "c")]) as c_index:
            write_files(
                scratch,
                {
                    "environments/ext/environment.yaml": CHILD.format(name="ext")
                    + "pip: requirements.txt\n",
                    "environments/ext/requirements.txt": "speedup==1.0\n",
                },
            )
            env = {
                "UV_CACHE_DIR": evil.env["UV_CACHE_DIR"],
                "UV_INDEX": c_index.url,
            }
            failed = run_envrepo("lock", "ext", "--build-wheels", cwd=scratch, env=env)
        assert failed.code == 2
        [line] = [x for x in failed.err.splitlines() if x.startswith("environments/")]
        assert line.startswith(
            "environments/ext/requirements.lock: speedup 1.0 cannot be built into a wheel in "
            "the base image "
        ), line
        assert "gcc" in line and "a native package needs a compiler there" in line, line
        assert not (scratch / "environments/ext/wheels").exists()


def _flavoured(root: Path, spec: str, flavour: str) -> dict[str, str]:
    return {
        f"environments/{flavour}/environment.yaml": spec,
        f"environments/{flavour}/requirements.txt": "torchy==2.0.0\n",
        f"environments/{flavour}/tests/test_flavour.py": (
            f"import torchy\nassert torchy.FLAVOUR == {flavour!r}, torchy.FLAVOUR\n"
        ),
    }


def test_one_package_from_two_indexes_one_per_environment_and_credentials_reach_one_host(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    authority = Certificate.make(tmp_path, "authority")
    cert = Certificate.make(tmp_path, "index", authority)
    files = tmp_path / "files"
    cpu_wheel = make_wheel(
        files / "cpu", "torchy", "2.0.0", ("alpha",), module_text='FLAVOUR = "cpu"\n'
    )
    cuda_wheel = make_wheel(
        files / "cuda", "torchy", "2.0.0", ("alpha",), module_text='FLAVOUR = "cuda"\n'
    )
    public = [make_wheel(files / "public", "alpha", "1.0.0"), cpu_wheel]
    password = "s3cret-only-for-the-cpu-index"
    basic = "Basic " + base64.b64encode(f"team:{password}".encode()).decode()
    with (
        package_index(tmp_path / "cpu", [cpu_wheel], cert, basic) as cpu,
        package_index(tmp_path / "cuda", [cuda_wheel], address="127.0.0.2") as cuda,
        package_index(tmp_path / "default", public, address="127.0.0.2") as default,
    ):
        write_files(
            scratch,
            {
                **_flavoured(
                    scratch,
                    CHILD.format(name="cpu")
                    + "pip: requirements.txt\n"
                    + f"indexes:\n  - name: cpu\n    url: {cpu.url}\n    explicit: true\n"
                    + "    packages: [torchy]\n",
                    "cpu",
                ),
                **_flavoured(
                    scratch,
                    CHILD.format(name="cuda")
                    + "pip: requirements.txt\n"
                    + f"indexes:\n  - name: cuda\n    url: {cuda.url}\n    packages: [torchy]\n",
                    "cuda",
                ),
            },
        )
        env = {
            "UV_DEFAULT_INDEX": default.url,
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "SSL_CERT_FILE": str(authority.cert),
            "UV_INDEX_CPU_USERNAME": "team",
            "UV_INDEX_CPU_PASSWORD": password,
        }
        locked = run_envrepo("lock", "cpu", "cuda", cwd=scratch, env=env)
        assert locked.code == 0, locked.err
        locks = {
            flavour: (scratch / f"environments/{flavour}/requirements.lock").read_text()
            for flavour in ("cpu", "cuda")
        }
        for flavour, wheel in (("cpu", cpu_wheel), ("cuda", cuda_wheel)):
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            assert (
                f"torchy==2.0.0 \\\n    --hash=sha256:{digest}\n    # via -r requirements.txt\n"
                f"    # from index {flavour}\n"
            ) in locks[flavour], locks[flavour]
            assert pins(scratch / f"environments/{flavour}/requirements.lock") == [
                "alpha==1.0.0",
                "torchy==2.0.0",
            ]
        # The default index is the user's: its URL is nowhere in the repository.
        assert "127.0.0.2" not in locks["cpu"] and default.url not in locks["cuda"]
        # The explicit index was asked for its package alone.
        assert cpu.names() == {"torchy"}
        commit(scratch, "two flavours")
        result = run_envrepo(
            "build",
            "cpu",
            "cuda",
            "--push",
            "--registry",
            built.registry.host,
            cwd=scratch,
            env=env,
        )
        assert result.code == 0, result.err[-3000:]
        assert result.err.count("test test_flavour.py: passed") == 2, result.err[-3000:]

        # ~/.netrc is per host: the same credentials from there reach the cpu index alone.
        (scratch / "environments/cpu/requirements.lock").unlink()
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login team password {password}\n")
        netrc.chmod(0o600)
        # A fresh cache each time: what uv fetched with credentials before says nothing.
        by_host = {k: v for k, v in env.items() if not k.startswith("UV_INDEX_CPU_")}
        by_host["UV_CACHE_DIR"] = str(tmp_path / "netrc-cache")
        again = run_envrepo("lock", "cpu", cwd=scratch, env={**by_host, "NETRC": str(netrc)})
        assert again.code == 0, again.err
        assert (scratch / "environments/cpu/requirements.lock").read_text() == locks["cpu"]
        # Without credentials, the index's refusal is one line.
        (scratch / "environments/cpu/requirements.lock").unlink()
        by_host["UV_CACHE_DIR"] = str(tmp_path / "bare-cache")
        refused = run_envrepo("lock", "cpu", cwd=scratch, env=by_host)
        assert refused.code == 2
        assert refused.err.splitlines()[0].startswith(
            "environments/cpu/requirements.lock: cpu cannot be locked"
        ), refused.err
    # lock --check reads files alone: it holds with every index gone.
    assert run_envrepo("lock", "--check", "cuda", cwd=scratch).code == 0
    assert any(given == basic for _, given in cpu.asked)
    assert all(given is None for _, given in cuda.asked + default.asked)
    outputs = locked.out + locked.err + result.out + result.err + again.err + refused.err
    assert password not in outputs
    leaked = [
        str(path)
        for path in [*scratch.rglob("*"), *Path.home().rglob("*")]
        if path.is_file() and password.encode() in path.read_bytes() and path != netrc
    ]
    assert leaked == []


def test_the_sbom_tells_a_private_wheel_from_the_public_package_of_its_name(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    # `tzdata` is a Debian package of the root image and a public project on PyPI; here it
    # is also a team's own wheel.
    wheel = make_wheel(tmp_path / "private", "tzdata", "0.1.0")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with_private_wheel(scratch, "priv", wheel, CHILD.format(name="priv"))
    write_files(
        scratch,
        {
            "environments/child/environment.yaml": SPEC.format(
                name="child", base="environment: priv"
            )
            + "pip: requirements.txt\n",
            "environments/child/requirements.txt": "tzdata\n",
        },
    )
    assert run_envrepo("lock", "child", cwd=scratch).code == 0
    commit(scratch, "a private tzdata")
    host = built.registry.host
    made = run_envrepo("build", "priv", "child", "--push", "--registry", host, cwd=scratch)
    assert made.code == 0, made.err[-3000:]
    index = tmp_path / "index"
    published = run_envrepo("publish", "--to", index, "--registry", host, cwd=scratch)
    assert published.code == 0, published.err[-3000:]
    for name in ("priv", "child"):
        text = (index / f"environments/{name}/1/sbom.cdx.json").read_text()
        purls = sorted(
            str(c["purl"]) for c in json.loads(text)["components"] if c["name"] == "tzdata"
        )
        assert len(purls) == 2, purls
        assert purls[0].startswith("pkg:deb/debian/tzdata@"), purls
        assert purls[1] == f"pkg:generic/tzdata@0.1.0?checksum=sha256:{digest}", purls
        assert "pkg:pypi/tzdata" not in text


def test_an_index_url_is_part_of_the_spec_and_pins_only_what_the_environment_names(
    make_repo: RepoMaker, tmp_path: Path
) -> None:
    files = tmp_path / "files"
    wheels = [make_wheel(files, "alpha", "1.0.0"), make_wheel(files, "torchy", "2.0.0")]
    with (
        package_index(tmp_path / "one", wheels) as one,
        package_index(tmp_path / "two", wheels, address="127.0.0.2") as two,
    ):
        root = make_repo("")
        spec = (
            env_spec("app", extra="pip: requirements.txt\n")
            + "indexes:\n  - name: own\n    url: {url}\n    explicit: true\n"
            + "    packages: [torchy]\n"
        )
        write_files(
            root,
            {
                "environments/app/environment.yaml": spec.format(url=one.url),
                "environments/app/requirements.txt": "alpha\n",
            },
        )
        env = {"UV_DEFAULT_INDEX": one.url, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
        unasked = run_envrepo("lock", "app", cwd=root, env=env)
        assert unasked.code == 2
        assert unasked.err.splitlines()[0] == (
            "environments/app/environment.yaml: indexes[0].packages: torchy is not a "
            "requirement of app, and an index serves the packages an environment names "
            "itself; add it to the requirements, or drop it here"
        )
        (root / "environments/app/requirements.txt").write_text("alpha\ntorchy\n")
        assert run_envrepo("lock", "app", cwd=root, env=env).code == 0
        assert run_envrepo("lock", "--check", "app", cwd=root).code == 0
        before = run_envrepo("hash", "app", cwd=root).out
        # Another URL is another environment: the lock is stale and the hash moves.
        (root / "environments/app/environment.yaml").write_text(spec.format(url=two.url))
        stale = run_envrepo("lock", "--check", "app", cwd=root)
        assert stale.code == 1, stale.err
        assert run_envrepo("hash", "app", cwd=root).out != before
        assert run_envrepo("lock", "app", cwd=root, env=env).code == 0
        assert "    # from index own\n" in (root / "environments/app/requirements.lock").read_text()
        assert "torchy" in two.names() and "torchy" in one.names()


def test_the_index_credentials_never_follow_a_redirect_to_another_host(
    make_repo: RepoMaker, tmp_path: Path
) -> None:
    published(tmp_path / "index", snapshot(GOOD))
    token = "Bearer index-token-for-127.0.0.1-only"
    seen: list[tuple[str, str | None]] = []

    class Elsewhere(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path / "index"), **kwargs)

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Elsewhere, None, "127.0.0.2") as other:

        class Moved(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != token:
                    self.send_response(401)
                    self.end_headers()
                    return
                self.send_response(302)
                self.send_header("Location", f"http://{other}{self.path}")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        with serving(Moved, None) as host:
            root = make_repo("")
            env = {"ENVREPO_INDEX_AUTHORIZATION": token}
            listed = run_envrepo("list", "--index", f"http://{host}", cwd=root, env=env)
    assert listed.code == 0, listed.err
    assert "env" in listed.out
    assert seen and all(given is None for _, given in seen), seen
