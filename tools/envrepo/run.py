"""Training runs: a command in an environment's image, as Azure ML's ScriptRunConfig runs a
script. The source folder goes in as a snapshot (a copy the run cannot change) and is the
working folder; `./outputs` (also $ENVREPO_OUTPUT_DIR) is the output folder on the host,
written as the calling user; the log is streamed and kept; `run.json` records which
environment ran what, so `run-info` can tell it and run it again."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envrepo import __version__
from envrepo.errors import EnvrepoError, Problem
from envrepo.repo import documents, git, schemas

WORKDIR = "/envrepo/run"
OUTPUTS = f"{WORKDIR}/outputs"
RECORD = "run.json"
LOG = "run.log"
# What a snapshot leaves out: the repository's history, and where outputs go.
LEFT_OUT = (".git", "outputs", ".envrepo", "__pycache__")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Environment:
    """Which environment a run uses: its name, version (None for this repository's working
    tree), spec hash, and image by digest where the registry holds it."""

    name: str
    version: int | None
    hash: str
    image: str
    digest: str | None


@dataclass(frozen=True)
class Request:
    command: tuple[str, ...]
    source: Path
    output: Path
    variables: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    shm_size: str | None = None
    gpus: str | None = None


def _pairs(given: Sequence[str]) -> dict[str, str]:
    found = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EnvrepoError(Problem("--env", "", f"{item!r} is not KEY=VALUE"))
        found[key] = value
    return found


def _mounts(given: Sequence[str]) -> dict[str, dict[str, str]]:
    found = {}
    for item in given:
        parts = item.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise EnvrepoError(Problem("--mount", "", f"{item!r} is not SRC:DST[:ro]"))
        source = Path(parts[0]).resolve()
        if not source.exists():
            raise EnvrepoError(Problem("--mount", "", f"{parts[0]} does not exist on this machine"))
        if not parts[1].startswith("/") or parts[1].startswith(WORKDIR):
            raise EnvrepoError(
                Problem("--mount", "", f"{parts[1]} must be an absolute path outside {WORKDIR}")
            )
        found[str(source)] = {"bind": parts[1], "mode": parts[2] if len(parts) == 3 else "rw"}
    return found


def _snapshot(source: Path, into: Path) -> None:
    """A copy of the source folder: links are copied as links, so nothing outside it is read."""
    if not source.is_dir():
        raise EnvrepoError(Problem("--source-dir", "", f"{source} is not a folder"))
    shutil.copytree(source, into, symlinks=True, ignore=shutil.ignore_patterns(*LEFT_OUT))
    for path in [into, *into.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
        elif path.is_file() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o444)


def run(engine: Any, environment: Environment, request: Request, echo: Log) -> int:
    """Run the command; its exit code. `run.json` and `run.log` land in the output folder."""
    if not request.command:
        raise EnvrepoError(
            "give the command after --, such as: envrepo run NAME -- python train.py"
        )
    variables = _pairs(request.variables)
    mounts = _mounts(request.mounts)
    output = request.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    source = request.source.resolve()
    record: dict[str, Any] = {
        "envrepo": __version__,
        "environment": asdict(environment),
        "command": list(request.command),
        "source": {
            "folder": str(source),
            "commit": git.head_commit(source),
            "dirty": git.differs(source, [source]) if git.head_commit(source) else None,
        },
        "start": documents.now(),
        "end": None,
        "exit_code": None,
    }
    with tempfile.TemporaryDirectory(prefix="envrepo-run-") as scratch:
        snapshot = Path(scratch) / "source"
        _snapshot(source, snapshot)
        options: dict[str, Any] = {
            "working_dir": WORKDIR,
            "user": f"{os.getuid()}:{os.getgid()}",
            "environment": {
                "ENVREPO_OUTPUT_DIR": OUTPUTS,
                "HOME": "/tmp",
                "ENVREPO_ENVIRONMENT": f"{environment.name}"
                + (f"@{environment.version}" if environment.version else ""),
                **variables,
            },
            "volumes": {
                str(snapshot): {"bind": WORKDIR, "mode": "rw"},
                str(output): {"bind": OUTPUTS, "mode": "rw"},
                **mounts,
            },
        }
        if request.shm_size:
            options["shm_size"] = request.shm_size
        if request.gpus:
            import docker.types

            count = -1 if request.gpus == "all" else int(request.gpus)
            options["device_requests"] = [
                docker.types.DeviceRequest(count=count, capabilities=[["gpu"]])
            ]
        with (output / LOG).open("w", encoding="utf-8") as kept:

            def log(line: str) -> None:
                kept.write(line + "\n")
                kept.flush()
                echo(line)

            try:
                code = engine.run_streaming(
                    environment.image, list(request.command), log, **options
                )
            finally:
                record["end"] = documents.now()
                documents.write(output / RECORD, record, schemas.RUN_RECORD)
    record["exit_code"] = code
    documents.write(output / RECORD, record, schemas.RUN_RECORD)
    return int(code)


def info(folder: Path) -> tuple[dict[str, Any], str]:
    """A past run's record, and the command that runs it again in the same image."""
    path = folder / RECORD
    if not path.is_file():
        raise EnvrepoError(Problem(str(path), "", "is missing; give the output folder of a run"))
    record = documents.read(
        path, "run record", schemas.RUN_RECORD, "give the output folder of a run"
    )
    environment, command = record["environment"], record["command"]
    image = str(environment["image"])
    digest = environment.get("digest")
    if "@" in image:
        again_image = f"# or, by digest: docker run --rm {shlex.quote(image)}"
    elif digest:
        repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        again_image = f"# or, by digest: docker run --rm {shlex.quote(f'{repository}@{digest}')}"
    else:
        again_image = f"# or, on this machine only: docker run --rm {shlex.quote(image)}"
    reference = environment["name"] + (
        f"@{environment['version']}" if environment.get("version") else ""
    )
    again = (
        f"envrepo run {reference} --source-dir {shlex.quote(record['source']['folder'])} -- "
        + shlex.join(command)
        + f"\n{again_image} {shlex.join(command)}"
    )
    return record, again
