"""The inference image: an environment's image, unchanged, with the scoring server's packages,
the app, the entry script's folder and the model each in a layer of their own on top. The
server's packages are locked like an environment's (exact versions, sha256 hashes, for the
image's python and platform) with the environment's installed packages as constraints, and
installed hash-checked on the host; a conflict is one line naming the pins."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from envrepo.errors import EnvrepoError, Problem
from envrepo.image.checks import listing, probe_python
from envrepo.lock import uv
from envrepo.lock.pip import entries
from envrepo.repo.digest import json_sha256
from envrepo.repo.files import cache_dir, write_text
from envrepo.repo.paths import confined_tree
from envrepo.repo.platforms import PLATFORMS, Target
from envrepo.repo.spec import ENV_PREFIX, VENV_INTERPRETER
from envrepo.run import Environment

SERVE_ROOT = "/envrepo/serve"
APP_ROOT = f"{SERVE_ROOT}/source"
# Where Azure ML mounts a deployment's models: each at azureml-models/<name>/<version>/,
# holding the registered file or folder under its own name.
MODELS_ROOT = "/var/azureml-app/azureml-models"
MODEL_VERSION = "1"  # a model given as a path has one version: itself
# The app's own modules, copied into the image as the package they are here.
APP_FILES = ("__init__.py", "app.py", "entry.py", "aml_api.py")
PORT = 8000  # inside the container
METRICS = "/tmp/envrepo-metrics"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Server:
    """A scoring server: its packages (locked within these ranges) and the shell command that
    starts it in the image ({entry}: the entry script, {port}: the port inside)."""

    requirements: tuple[str, ...]
    start: str


# envrepo's: uvicorn running app.py on uvloop with httptools' parser (C, where h11 and
# asyncio's own loop are Python), prometheus_client, and what Azure's entry scripts import
# from their server: werkzeug (AMLRequest, AMLResponse) and inference_schema.
UVICORN = Server(
    (
        "uvicorn>=0.30,<1",
        "uvloop>=0.19,<1",
        "httptools>=0.6,<1",
        "prometheus-client>=0.20,<1",
        "werkzeug>=2.2,<4",
        "inference-schema>=1.8,<2",
    ),
    f"rm -rf {METRICS} && mkdir -p {METRICS} && exec {VENV_INTERPRETER} -m uvicorn "
    f"--app-dir {SERVE_ROOT} envrepo.serve.app:app --host 0.0.0.0 --port {{port}} --loop uvloop "
    "--http httptools --workers ${{ENVREPO_WORKERS:-2}} --no-access-log "
    "--timeout-graceful-shutdown 5",
)


@dataclass(frozen=True)
class Inference:
    """What was built: the image's tag, and what every response will name."""

    tag: str
    model_sha256: str
    entry: str


def _checked(path: Path, what: str) -> None:
    """A file or folder given on the command line: no `file://` name, no link, nothing in it
    that leads out of it."""
    if str(path).startswith("file:"):
        raise EnvrepoError(Problem(str(path), what, "give a path on this machine, not a URL"))
    if path.is_symlink() or not path.exists():
        raise EnvrepoError(
            Problem(str(path), what, "is not a file or folder here (links are refused)")
        )
    if path.is_dir():
        leaks = list(confined_tree(path, path, str(path)))
        if leaks:
            raise EnvrepoError(*leaks)


def _copy(source: Path, target: Path) -> None:
    """`source` (a file or a folder) as `target`."""
    if source.is_dir():
        shutil.copytree(
            source, target, ignore=shutil.ignore_patterns("__pycache__", ".git", "outputs")
        )
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


@dataclass(frozen=True)
class Model:
    """A model to serve: where its files are here, its name and version, and whether they go
    under `<name>/<version>/` as they are (a registered model's) or under their own name (a
    file or folder given as a path)."""

    path: Path
    name: str
    version: int = 1
    as_they_are: bool = False

    @classmethod
    def at(cls, path: Path) -> Model:
        return cls(path, path.stem if path.is_file() else path.name)

    @property
    def place(self) -> str:
        """Where it goes under MODELS_ROOT."""
        own = "" if self.as_they_are else f"/{self.path.name}"
        return f"{self.name}/{self.version}{own}"


def model_sha256(models: Sequence[Model]) -> str:
    """The models' sha256: of the file, or of its folder's files and their names; of the
    list of those for several."""
    each = [
        hashlib.sha256(m.path.read_bytes()).hexdigest() if m.path.is_file() else _tree(m.path)
        for m in models
    ]
    return each[0] if len(each) == 1 else json_sha256(each)


def model_layout(models: Sequence[Model]) -> str:
    """AZUREML_MODEL_DIR, as Azure ML sets it: one model's own folder, or the root of
    several."""
    folders = [f"{m.name}/{m.version}" for m in models]
    for model, folder in zip(models, folders, strict=True):
        if folders.count(folder) > 1:
            raise EnvrepoError(
                Problem(
                    str(model.path),
                    "--model",
                    "is given twice, or two models have one name and version; rename one",
                )
            )
    return f"{MODELS_ROOT}/{folders[0]}" if len(folders) == 1 else MODELS_ROOT


def _target(engine: Any, image: str, python: str) -> Target:
    """What the server's packages are chosen for: the image's python on its own platform."""
    found = engine.image(image)
    architecture = str((found.attrs if found else {}).get("Architecture") or "amd64")
    platform = f"linux/{architecture}"
    if platform not in PLATFORMS:
        raise EnvrepoError(f"{image}: is built for {platform}, which envrepo does not target")
    return Target.of(python, platform)


def _server_packages(
    engine: Any, image: str, context: Path, server: Server, log: Log
) -> tuple[str, str]:
    """The server's packages installed (hash-checked) into `context/server`, for the image's
    interpreter; the image's site-packages path and python version."""
    python = probe_python(engine, image, VENV_INTERPRETER)
    if python is None:
        raise EnvrepoError(
            f"{image}: has no {VENV_INTERPRETER}; serve needs an environment with a venv"
        )
    target = _target(engine, image, ".".join(python.version.split(".")[:2]))
    pins = listing(engine, image, VENV_INTERPRETER, image)["pip"]
    installed = {str(canonicalize_name(k)): str(v[0]) for k, v in pins.items()}
    constraints = "".join(f"{name}=={version}\n" for name, version in sorted(installed.items()))
    key = json_sha256(
        {
            "server": server.requirements,
            "constraints": constraints,
            "python": target.major_minor,
            "platform": target.platform.name,
        }
    )
    lock = cache_dir("serve") / f"{key}.lock"
    if not lock.is_file():
        scratch = context / "lock"
        scratch.mkdir()
        (scratch / "constraints.txt").write_text(constraints)
        (scratch / "server.in").write_text("".join(f"{r}\n" for r in server.requirements))
        options = [
            "-c",
            "constraints.txt",
            *target.uv_options(),
            "--generate-hashes",
            "--no-header",
        ]
        done = subprocess.run(
            uv.compile_command(["server.in"], Path("server.lock"), options),
            cwd=scratch,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise EnvrepoError(
                f"serve: the scoring server's packages ({', '.join(server.requirements)}) do "
                f"not go with {image}'s pins: {uv.error_line(done.stderr)}"
            )
        write_text(lock, (scratch / "server.lock").read_text())
    # What the environment has (at the same version: the constraints) stays the environment's.
    own = [
        text
        for first, text in entries(lock.read_text())
        if str(canonicalize_name(first.split("==")[0])) not in installed
    ]
    wanted = context / "server.lock"
    wanted.write_text("".join(own))
    folder = context / "server"
    command = uv.install_command(folder, target, wanted)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvrepoError(
            f"serve: installing the server's packages failed: {uv.error_line(done.stderr)}"
        )
    log(
        f"serve: the server's packages from {lock.name[:12]}: {', '.join(sorted(p.name for p in folder.glob('*.dist-info')))}"
    )
    return f"{ENV_PREFIX}/lib/python{target.major_minor}/site-packages", python.version


def build(
    engine: Any,
    environment: Environment,
    entry: Path,
    source: Path,
    models: Sequence[Model],
    log: Log,
    server: Server = UVICORN,
) -> Inference:
    """The inference image for `environment` with `entry` (inside `source`) and `models`."""
    _checked(source, "--source-dir")
    for model in models:
        _checked(model.path, "--model")
    entry = entry.resolve()
    if not entry.is_file() or entry.is_symlink() or source.resolve() not in entry.parents:
        raise EnvrepoError(
            Problem(
                str(entry), "--entry-script", f"is not a file inside its source folder {source}"
            )
        )
    digest = model_sha256(models)
    model_dir = model_layout(models)
    with tempfile.TemporaryDirectory(prefix="envrepo-serve-") as scratch:
        context = Path(scratch)
        site, _ = _server_packages(engine, environment.image, context, server, log)
        (context / "app/envrepo/serve").mkdir(parents=True)
        (context / "app/envrepo/__init__.py").write_text("")
        for name in APP_FILES:
            shutil.copy(Path(__file__).with_name(name), context / "app/envrepo/serve" / name)
        _copy(source.resolve(), context / "source")
        for model in models:
            _copy(model.path.resolve(), context / "models" / model.place)
        relative = entry.relative_to(source.resolve()).as_posix()
        variables = {
            "AZUREML_MODEL_DIR": model_dir,
            "ENVREPO_MODEL_DIR": model_dir,
            "AML_APP_ROOT": APP_ROOT,
            "AZUREML_ENTRY_SCRIPT": relative,
            "ENVREPO_ENTRY_SCRIPT": f"{APP_ROOT}/{relative}",
            "ENVREPO_ENVIRONMENT": environment.name
            + (f"@{environment.version}" if environment.version else ""),
            "ENVREPO_SPEC_HASH": environment.hash,
            "ENVREPO_IMAGE_DIGEST": environment.digest or "",
            "ENVREPO_MODEL_SHA256": digest,
            "PROMETHEUS_MULTIPROC_DIR": METRICS,
        }
        start = server.start.format(entry=variables["ENVREPO_ENTRY_SCRIPT"], port=PORT)
        dockerfile = "\n".join(
            [
                f"FROM {environment.image}",
                f"COPY server/ {site}/",
                f"COPY app/ {SERVE_ROOT}/",
                f"COPY source/ {APP_ROOT}/",
                f"COPY models/ {MODELS_ROOT}/",
                "ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in variables.items()),
                f"EXPOSE {PORT}",
                f"CMD {json.dumps(['/bin/sh', '-c', start])}",
            ]
        )
        (context / "Dockerfile").write_text(dockerfile + "\n")
        tag = f"envrepo-serve/{environment.name}:{json_sha256([dockerfile, digest, _tree(context)])[:12]}"
        engine.build(context, "Dockerfile", tag, log)
    return Inference(tag, digest, relative)


def _tree(folder: Path) -> str:
    """What the image is made of, so that the same inputs give the same tag."""
    return json_sha256(
        {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and "lock" not in p.relative_to(folder).parts
        }
    )
