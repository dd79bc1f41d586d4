"""What the tests share that is not a fixture: running the installed envrepo command, scratch
repositories and files, the project's services script and registries, small real wheels and
a conda channel the tests build themselves."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import pty
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import jsonschema
import pytest
from rattler.index import index_fs

from envrepo.index.read import Index
from envrepo.index.store import IndexFolder
from envrepo.publish import publisher
from envrepo.publish.index import Release
from envrepo.repo import schemas
from envrepo.repo.spec import Spec
from registries import (
    Certificate,
    RunningRegistry,
    TokenIssuer,
    serving,
    start_registry,
    token_block,
)

PROJECT = Path(__file__).resolve().parent.parent


def envrepo_command() -> str:
    """The console script installed beside the interpreter running the tests."""
    found = Path(sys.executable).parent / "envrepo"
    if not found.is_file():
        pytest.fail(f"envrepo is not installed beside {sys.executable}; run scripts/setup.sh")
    return str(found)


def _foreground() -> None:
    # Ctrl-C reaches a terminal's foreground job with SIGINT at its default; a suite started
    # in a shell's background inherits SIGINT ignored, and so would every envrepo it starts.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def stoppable_envrepo(*args: str, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """envrepo running as a terminal's foreground job would (its output read as text), for a
    test to stop; killed at the end of the block should it still run."""
    process = subprocess.Popen(
        [envrepo_command(), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "true"},
        preexec_fn=_foreground,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines() + self.err.splitlines()


def run_envrepo(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> Result:
    done = subprocess.run(
        [envrepo_command(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=timeout,
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


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


# Who the tests' commits are by: the machine may have no git identity.
IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@envrepo.invalid")


def commit(root: Path, message: str) -> str:
    """Everything in the work tree at `root` committed but envrepo's own state (.envrepo/,
    which a real repository ignores); the commit's SHA."""
    git("add", "-A", "--", ".", ":!.envrepo", cwd=root)
    git(*IDENTITY, "commit", "-qm", message, cwd=root)
    return git("rev-parse", "HEAD", cwd=root)


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


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def services_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PROJECT / "scripts/services.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def forget_images(host: str) -> None:
    """Untag what the tests built under a registry of their own, and drop what that frees."""
    import docker

    client = docker.from_env()
    for image in client.images.list():
        # Tags, and the by-digest names a pull leaves.
        for name in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
            if name.startswith(f"{host}/"):
                # Removing its last tag may have taken a by-digest name with it.
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(name)
    client.images.prune(filters={"dangling": True, "label": "dev.envrepo.name"})


def write_fresh_lock(root: Path, name: str, body: str) -> Spec:
    """A pip lock for environment `name` whose header matches its inputs now (no resolver);
    the environment's Spec."""
    from envrepo.inputs import sources
    from envrepo.lock import files as lock
    from envrepo.repo.config import open_repository
    from envrepo.repo.spec import load_catalog

    spec = load_catalog(open_repository(root, explicit=True)[0]).specs[name]
    [item] = sources.lock_inputs(spec)
    item.lock.write_text(
        lock.lock_text(spec, item, lock.input_digest(spec, item, []), body, "uv 0")
    )
    return spec


def make_conda_package(
    channel: Path,
    name: str,
    version: str,
    depends: tuple[str, ...] = (),
    subdir: str = "noarch",
    files: dict[str, bytes] | None = None,
) -> Path:
    """A conda package; `files` (path in the prefix → bytes) are installed executable."""
    files = files or {}
    folder = channel / subdir
    folder.mkdir(parents=True, exist_ok=True)
    index = {
        "name": name,
        "version": version,
        "build": "0",
        "build_number": 0,
        "depends": list(depends),
        "subdir": subdir,
        "timestamp": 1_700_000_000_000,
        "license": "MIT",
    }
    if subdir == "noarch":
        index["noarch"] = "generic"
    paths = [
        {
            "_path": path,
            "path_type": "hardlink",
            "size_in_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        for path, data in sorted(files.items())
    ]
    members = {
        "info/index.json": json.dumps(index).encode(),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}).encode(),
        "info/files": "".join(f"{path}\n" for path in sorted(files)).encode(),
        **files,
    }
    path = folder / f"{name}-{version}-0.tar.bz2"
    with tarfile.open(path, "w:bz2") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o755 if member in files else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def index_channel(channel: Path) -> str:
    (channel / "linux-64").mkdir(parents=True, exist_ok=True)
    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel))
    return channel.resolve().as_uri()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    requires: tuple[str, ...] = (),
    metadata_name: str | None = None,
    module_text: str = "",
) -> Path:
    """A pure-Python wheel holding one module `name` that knows its version (and holds
    `module_text`)."""
    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'__version__ = "{version}"\n{module_text}'.encode(),
        f"{dist_info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {metadata_name or name}\n"
            f"Version: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: envrepo-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def make_index(root: Path, wheels: list[Path], sdists: tuple[Path, ...] = ()) -> str:
    """A PEP 503 simple index of `wheels` and `sdists` in `root`, as a file:// URL."""
    from envrepo.inputs import wheels as wheelfile

    url = wheelfile.write_index([wheelfile.inspect(w, w.name) for w in wheels], root)
    for sdist in sdists:
        name = sdist.name.rsplit("-", 1)[0].lower().replace("_", "-")
        page = root / name / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        page.write_text(f'<a href="{sdist.resolve().as_uri()}#sha256={digest}">{sdist.name}</a>\n')
    return url


# A PEP 517 backend in the sdist itself: it builds with nothing from an index.
_BACKEND = """\
import base64, hashlib, os, zipfile

NAME, VERSION, TAG = {name!r}, {version!r}, {tag!r}
# A test sees whether this code ran, and where: a marker in ENVREPO_TEST_MARKERS.
if os.environ.get("ENVREPO_TEST_MARKERS"):
    open(os.path.join(os.environ["ENVREPO_TEST_MARKERS"], NAME + "-ran"), "w").close()
DIST = f"{{NAME}}-{{VERSION}}.dist-info"
METADATA = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: {{VERSION}}\\n".encode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    os.makedirs(os.path.join(directory, DIST))
    with open(os.path.join(directory, DIST, "METADATA"), "wb") as out:
        out.write(METADATA)
    return DIST


def _where():
    # Who built the wheel, and which network interfaces the build could see.
    net = "/sys/class/net"
    return {{"uid": os.getuid(), "interfaces": sorted(os.listdir(net)) if os.path.isdir(net) else []}}


def build_wheel(directory, config_settings=None, metadata_directory=None):
    pure = TAG.endswith("none-any")
    files = {{
        f"{{NAME}}/__init__.py": f"__version__ = {{VERSION!r}}\\nBUILT = {{_where()!r}}\\n".encode(),
        f"{{DIST}}/METADATA": METADATA,
        f"{{DIST}}/WHEEL": f"Wheel-Version: 1.0\\nRoot-Is-Purelib: {{str(pure).lower()}}\\nTag: {{TAG}}\\n".encode(),
    }}
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{{path}},sha256={{digest}},{{len(data)}}\\n"
    files[f"{{DIST}}/RECORD"] = (record + f"{{DIST}}/RECORD,,\\n").encode()
    name = f"{{NAME}}-{{VERSION}}-{{TAG}}.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w") as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
    return name
"""


def make_sdist(folder: Path, name: str, version: str, tag: str = "py3-none-any") -> Path:
    """A source distribution of one module `name` whose wheel gets `tag` (a pure one by
    default), built by a backend it carries itself."""
    folder.mkdir(parents=True, exist_ok=True)
    top = f"{name}-{version}"
    members = {
        "pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        "backend.py": _BACKEND.format(name=name, version=version, tag=tag),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    path = folder / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@dataclass(frozen=True)
class Built:
    root: Path
    result: Result
    registry: RunningRegistry

    def record(self, name: str) -> dict[str, object]:
        [path] = (self.root / ".envrepo/builds").glob(f"{name}-*.json")
        record: dict[str, object] = json.loads(path.read_text())
        jsonschema.validate(record, schemas.load(schemas.BUILD_RECORD))
        return record


def curated_repo(target: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copy(PROJECT / "envrepo.yaml", target / "envrepo.yaml")
    shutil.copytree(PROJECT / "environments", target / "environments")
    git("init", "-q", "-b", "main", cwd=target)
    commit(target, "curated")
    return target


def curated_root_image() -> str:
    """The local tag of the curated root's debootstrap image, as its spec defines it."""
    from envrepo.image.bootstrap import image_tag
    from envrepo.repo.config import open_repository
    from envrepo.repo.spec import load_catalog

    root = load_catalog(open_repository(PROJECT, explicit=True)[0]).specs["envrepo-bookworm"]
    assert root.base.bootstrap is not None
    return image_tag(root.base.bootstrap)


CHILD = 'name: {name}\nbase:\n  environment: envrepo-bookworm\npython: "3.11"\n'


def pushed_tag(root: Path, name: str) -> str:
    """The hash tag of the image of `name` that the last build in `root` recorded."""
    [path] = (root / ".envrepo/builds").glob(f"{name}-*.json")
    return str(json.loads(path.read_text())["image"]).rsplit(":", 1)[1]


def is_pushed(host: str, name: str) -> bool:
    """Whether `name` has an image (its hash tag) in the registry at `host`."""
    return any(tag.startswith("h-") for tag in tags_of(host, name))


def tags_of(host: str, name: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://{host}/v2/{name}/tags/list", timeout=10) as response:
            return list(json.loads(response.read()).get("tags") or [])
    except urllib.error.HTTPError:
        return []


def local_tags(name: str) -> list[str]:
    images = docker.from_env().images.list()
    return [t for image in images for t in image.tags if f"/{name}:" in t]


def with_private_wheel(root: Path, name: str, wheel: Path, spec: str) -> None:
    """Environment `name` of `spec` with `wheel` as its private wheel, locked (offline: the
    wheel is its own index)."""
    write_files(
        root,
        {
            f"environments/{name}/environment.yaml": spec + "wheels: wheels\n",
            f"environments/{name}/wheels/{wheel.name}": wheel.read_bytes(),
        },
    )
    locked = run_envrepo("lock", name, cwd=root)
    assert locked.code == 0, locked.err


@contextmanager
def serve_folder(
    folder: Path, authorization: str | None = None, served: list[tuple[str, int]] | None = None
) -> Iterator[str]:
    """`folder` over HTTP on loopback, as a static web server would serve a published index
    (asking for `authorization` when given; each path and its size appended to `served`);
    its URL."""
    from registries import serving

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            if authorization and self.headers.get("Authorization") != authorization:
                self.send_error(401)
                return
            super().do_GET()

        def copyfile(self, source: Any, outputfile: Any) -> None:
            data = source.read()
            if served is not None:
                served.append((self.path, len(data)))
            outputfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler, None) as host:
        yield f"http://{host}"


def index_problems(folder: Path) -> list[str]:
    """What is wrong with the published index in `folder`: a document that does not parse or
    fails its schema, a name that leads nowhere, a latest version that is not there."""
    import referencing
    from jsonschema import Draft202012Validator

    loaded = {
        name: schemas.load(name)
        for name in (schemas.INDEX, schemas.INDEX_ENVIRONMENT, schemas.INDEX_VERSION)
    }
    store = referencing.Registry().with_resources(
        (name, referencing.Resource.from_contents(schema)) for name, schema in loaded.items()
    )

    def problems(path: Path, schema: str) -> list[str]:
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            return [f"{path}: {error}"]
        validator = Draft202012Validator(loaded[schema], registry=store)
        return [f"{path}: {e.message}" for e in validator.iter_errors(document)]

    found = problems(folder / "index.json", schemas.INDEX)
    if found:
        return found
    top = json.loads((folder / "index.json").read_text())
    for name, entry in top["environments"].items():
        document_path = folder / entry["document"]
        found += problems(document_path, schemas.INDEX_ENVIRONMENT)
        if found:
            continue
        document = json.loads(document_path.read_text())
        numbers = [r["number"] for r in document["releases"]]
        if numbers != list(range(1, len(numbers) + 1)):
            found.append(f"{name}: versions {numbers} are not 1..n")
        if int(entry["latest"]) not in numbers:
            found.append(f"{name}: index.json's latest {entry['latest']} is not a version")
        for release in document["releases"]:
            found += problems(folder / release["version_document"], schemas.INDEX_VERSION)
            for path in (release["sbom"], release["folder"]["path"]):
                if not (folder / path).is_file():
                    found.append(f"{name}: {path} is missing")
        if not (folder / entry["page"]).is_file():
            found.append(f"{name}: {entry['page']} is missing")
    return found


def manifest_digest(host: str, name: str, tag: str) -> str | None:
    request = urllib.request.Request(
        f"http://{host}/v2/{name}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.headers["Docker-Content-Digest"])
    except urllib.error.HTTPError:
        return None


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and line[0] not in "# ":
            name, version = line.split(" ")[0].split("==")
            pins[name.lower()] = version
    return pins


# Releases for the publish stages' tests: a version of an environment as publish takes it.
NOW = "2026-11-30T04:00:00+00:00"


def release_packages(**pins: str) -> dict[str, dict[str, dict[str, str]]]:
    return {
        "apt": {"bash": {"version": "5.2.15-2+b7", "purl": "pkg:deb/debian/bash@5.2.15-2%2Bb7"}},
        "conda": {},
        "pip": {
            name: {"version": version, "purl": f"pkg:pypi/{name}@{version}"}
            for name, version in pins.items()
        },
    }


def release(name: str, number: int, commit: str = "c" * 40, **pins: str) -> Release:
    return Release(
        name=name,
        hash=f"{number:064x}",
        digest=f"sha256:{number:064x}",
        repository=f"registry.test/{name}",
        platform="linux/amd64",
        tags=(f"h-{number:012x}",),
        commit=commit,
        subject="a change",
        committed=NOW,
        built=NOW,
        python="3.11",
        description="for tests",
        labels={"team": "ml"},
        base={"text": "image:debian"},
        parent_hash=None,
        packages=release_packages(**pins),
        folder=b"folder",
        folder_sha256="f" * 64,
    )


@dataclass(frozen=True)
class TokenRegistry:
    registry: RunningRegistry
    issuer: TokenIssuer
    user: str
    password: str

    @property
    def host(self) -> str:
        return self.registry.host

    def env(self, password: str | None = None) -> dict[str, str]:
        return {
            "ENVREPO_REGISTRY_USERNAME": self.user,
            "ENVREPO_REGISTRY_PASSWORD": self.password if password is None else password,
        }

    def push(self, image: str, repository: str, tag: str) -> None:
        """`image` into this registry as `repository:tag`, pushed by the daemon with this
        registry's user, and then gone from the daemon by name and by digest, so that using it
        means pulling it."""
        client = docker.from_env()
        reference = f"{self.host}/{repository}"
        client.images.get(image).tag(reference, tag)
        for chunk in client.images.push(
            reference,
            tag=tag,
            auth_config={"username": self.user, "password": self.password},
            stream=True,
            decode=True,
        ):
            assert "error" not in chunk, chunk
        for name in client.images.get(f"{reference}:{tag}").attrs["RepoDigests"]:
            if name.startswith(f"{reference}@"):
                client.images.remove(name)
        client.images.remove(f"{reference}:{tag}")


@contextmanager
def token_mode(folder: Path, user: str, public: tuple[str, ...]) -> Iterator[TokenRegistry]:
    """The distribution registry in token mode over TLS; its token issuer grants `user` pull
    and push everywhere, and anyone pull on the repositories under `public`."""
    folder.mkdir(parents=True, exist_ok=True)
    signer = Certificate.make(folder, "signer")
    tls = Certificate.make(folder, "tls")
    password = f"pw-{secrets.token_hex(12)}"
    issuer = TokenIssuer(signer, {user: password}, public)
    with serving(issuer.handler(), tls) as realm:
        running = start_registry(folder, token_block(realm, signer), tls)
        try:
            yield TokenRegistry(running, issuer, user, password)
        finally:
            running.stop()
            forget_images(running.host)


# The version the tests release envrepo as: a tag in a clone of this checkout, whose wheel and
# sdist the tests build and install as another repository would.
RELEASE = "0.2.0"


@dataclass(frozen=True)
class Released:
    """envrepo released from a clone of this checkout (tagged `v<version>`): its wheel and
    sdist, a wheelhouse with every package they need (so that installs are offline and fast),
    and the wheel installed into a virtual environment outside any checkout."""

    version: str
    source: Path
    wheel: Path
    sdist: Path
    wheelhouse: Path
    envrepo: Path

    def pip_env(self) -> dict[str, str]:
        """What makes pip install from the wheelhouse alone (a runner's, pre-commit's)."""
        return {"PIP_FIND_LINKS": str(self.wheelhouse), "PIP_NO_INDEX": "1"}

    def run(self, *args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
        done = subprocess.run(
            [str(self.envrepo), *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            timeout=1200,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)


def release_envrepo(folder: Path) -> Released:
    """Clone, tag, build (no build isolation: the project's .venv has the build backend),
    check with twine, gather the wheelhouse and install the wheel into a new venv."""
    source = folder / "envrepo"
    git("clone", "-q", str(PROJECT), str(source), cwd=folder)
    git(*IDENTITY, "tag", "-f", "-a", f"v{RELEASE}", "-m", f"envrepo {RELEASE}", cwd=source)
    python = Path(sys.executable)
    dist = folder / "dist"

    def step(*command: str | Path, cwd: Path = folder) -> None:
        done = subprocess.run(
            [str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"

    step(python, "-m", "build", "--no-isolation", "--outdir", dist, source, cwd=source)
    [wheel] = dist.glob("*.whl")
    [sdist] = dist.glob("*.tar.gz")
    step(python.parent / "twine", "check", "--strict", wheel, sdist)
    wheelhouse = folder / "wheelhouse"
    step(
        python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
        "--wheel-dir", wheelhouse, wheel, "setuptools>=77", "setuptools-scm>=8", "wheel",
        "build", "twine",
    )  # fmt: skip
    tool = folder / "tool"
    step("/usr/bin/python3", "-m", "venv", tool)
    step(
        tool / "bin/pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
        "--find-links", wheelhouse, f"envrepo=={RELEASE}",
    )  # fmt: skip
    return Released(RELEASE, source, wheel, sdist, wheelhouse, tool / "bin/envrepo")


def snapshot(members: dict[str, bytes], link: str | None = None) -> bytes:
    """A published folder snapshot of `env` holding `members` (and a symlink `link`)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo("environments/env")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("environments/env/link")
            info.type = tarfile.SYMTYPE
            info.linkname = link
            archive.addfile(info)
    return gzip.compress(buffer.getvalue(), mtime=0)


def published(folder: Path, data: bytes) -> Index:
    """An index folder with versions 1 and 2 of `env`, from commits a… and b…, each with
    `data` as its folder snapshot."""
    first = replace(
        release("env", 1, commit="a" * 40, numpy="1.0"),
        folder=data,
        folder_sha256=hashlib.sha256(data).hexdigest(),
    )
    second = replace(
        release("env", 2, commit="b" * 40, numpy="1.1"),
        folder=data,
        folder_sha256=hashlib.sha256(data).hexdigest(),
    )
    publisher.apply(IndexFolder(folder), [first], (), NOW)
    publisher.apply(IndexFolder(folder), [second], (), NOW)
    return Index(str(folder))


GOOD = {"environments/env/environment.yaml": b"name: env\n", "environments/env/tests/t.py": b"1\n"}


def train_tutorial(built: Built, base: Path) -> tuple[Path, Path]:
    """The worked example trained with `envrepo run` in the built tutorial environment: its
    source copied to `base/source`, its outputs (model.pkl, metrics.json, run.json) in
    `base/out`."""
    source, out = base / "source", base / "out"
    shutil.copytree(PROJECT / "examples/tutorial", source)
    done = run_envrepo(
        "run",
        "envrepo-tutorial",
        "--source-dir",
        source,
        "--output-dir",
        out,
        "--",
        "python",
        "train.py",
        cwd=built.root,
        env={"ENVREPO_REGISTRY": built.registry.host},
    )
    assert done.code == 0, done.err[-2000:]
    return source, out
