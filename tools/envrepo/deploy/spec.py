"""A deployment file read and checked: the schema, then what the schema cannot say (the
endpoint is the file's name, the split names the deployments and adds up to 100, each
environment is this repository's or pinned, each code folder holds its scoring script, each
model is in the registry)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envrepo.errors import EnvrepoError, Problem, Severity
from envrepo.repo import schemas
from envrepo.repo.config import Repository
from envrepo.repo.paths import confinement
from envrepo.repo.schema import violations
from envrepo.repo.yamlio import load_yaml

FOLDER = "deployments"
DEFAULT_PORT = 8080


@dataclass(frozen=True)
class Probe:
    initial_delay: int = 10
    period: int = 10
    timeout: int = 2
    failure_threshold: int = 3


@dataclass(frozen=True)
class Deployment:
    name: str
    environment: str
    model: str
    code: str
    scoring_script: str
    instance_count: int = 1
    cpu: float | None = None
    memory: str | None = None
    request_timeout_ms: int = 60000
    max_concurrent_requests_per_instance: int = 1
    max_body_bytes: int = 100 << 20
    liveness: Probe = field(default_factory=Probe)
    readiness: Probe = field(default_factory=Probe)


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: Path
    display: str
    port: int
    deployments: Mapping[str, Deployment]
    traffic: Mapping[str, int]


def files(repo: Repository) -> list[Path]:
    folder = repo.root / FOLDER
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def _probe(document: Mapping[str, Any] | None) -> Probe:
    return Probe(**(document or {}))


def endpoint_of(path: Path, document: Mapping[str, Any], display: str) -> Endpoint:
    deployments = {}
    for name, entry in document["deployments"].items():
        settings = entry.get("request_settings") or {}
        resources = entry.get("resources") or {}
        deployments[name] = Deployment(
            name=name,
            environment=entry["environment"],
            model=entry["model"],
            code=entry["code"],
            scoring_script=entry["scoring_script"],
            instance_count=entry.get("instance_count", 1),
            cpu=resources.get("cpu"),
            memory=resources.get("memory"),
            liveness=_probe(entry.get("liveness_probe")),
            readiness=_probe(entry.get("readiness_probe")),
            **settings,
        )
    traffic = document.get("traffic")
    if traffic is None and len(deployments) == 1:
        traffic = {next(iter(deployments)): 100}
    return Endpoint(
        document["endpoint"],
        path,
        display,
        document.get("port", DEFAULT_PORT),
        deployments,
        dict(traffic or {}),
    )


def load(path: Path, repo: Repository) -> tuple[Endpoint | None, list[Problem]]:
    """The endpoint `path` describes, or None, with every problem the schema finds."""
    display = repo.display(path)
    try:
        document = load_yaml(path, display, "deployment")
    except EnvrepoError as error:
        return None, [
            p if isinstance(p, Problem) else Problem(display, "", p) for p in error.problems
        ]
    found = violations(document, schemas.DEPLOYMENT, display)
    if found:
        return None, found
    return endpoint_of(path, document, display), []


# Whether a registered model exists: its NAME@V → None (it does), or the severity and the
# message why not.
ModelCheck = Callable[[str], "tuple[Severity, str] | None"]


def problems(
    endpoint: Endpoint,
    repo: Repository,
    pinned: Mapping[str, int],
    environments: set[str],
    model_check: ModelCheck | None,
) -> list[Problem]:
    """What the schema cannot see in `endpoint`."""
    display = endpoint.display
    found = []
    if endpoint.name != endpoint.path.stem:
        found.append(
            Problem(
                display,
                "endpoint",
                f"{endpoint.name!r} differs from the file's name {endpoint.path.stem!r}; make them the same",
            )
        )
    unknown = sorted(set(endpoint.traffic) - set(endpoint.deployments))
    if unknown:
        found.append(
            Problem(
                display,
                "traffic",
                f"names {', '.join(unknown)}, which is no deployment of the endpoint; name one of {', '.join(endpoint.deployments)}",
            )
        )
    total = sum(endpoint.traffic.values())
    if total != 100:
        found.append(
            Problem(
                display,
                "traffic",
                f"adds up to {total}, not 100; give each deployment its percent so that they add up to 100",
            )
        )
    for name, deployment in endpoint.deployments.items():
        where = f"deployments.{name}"
        environment, at, version = deployment.environment.partition("@")
        if at and pinned.get(environment) != int(version):
            have = pinned.get(environment)
            found.append(
                Problem(
                    display,
                    f"{where}.environment",
                    (
                        f"{deployment.environment} is not pinned in envrepo.lock"
                        + (f" (it pins version {have})" if have else "")
                    )
                    + f"; envrepo pin {deployment.environment}",
                )
            )
        elif not at and environment not in environments:
            found.append(
                Problem(
                    display,
                    f"{where}.environment",
                    f"{environment} is no environment of this repository; name one, or pin NAME@VERSION",
                )
            )
        code = repo.root / deployment.code
        leads_out = confinement(code, repo.root)
        script = code / deployment.scoring_script
        if leads_out is not None or not code.is_dir():
            found.append(
                Problem(
                    display,
                    f"{where}.code",
                    f"{deployment.code} is not a folder inside the repository; give the scoring code's folder",
                )
            )
        elif confinement(script, code) is not None or not script.is_file():
            found.append(
                Problem(
                    display,
                    f"{where}.scoring_script",
                    f"{deployment.scoring_script} is not a file inside {deployment.code}; give the entry script's path in it",
                )
            )
        if model_check is not None:
            missing = model_check(deployment.model)
            if missing is not None:
                found.append(Problem(display, f"{where}.model", missing[1], missing[0]))
    return found


def split(paths: Sequence[Path], repo: Repository) -> tuple[list[Path], list[Path]]:
    """`paths` as deployment files (inside deployments/) and the rest."""
    folder = (repo.root / FOLDER).resolve()
    ours = [p for p in paths if p.resolve().is_relative_to(folder)]
    return ours, [p for p in paths if p not in ours]


def check_files(
    repo: Repository, chosen: Sequence[Path], model_check: Callable[[], ModelCheck | None]
) -> tuple[list[Problem], int]:
    """Every problem of the deployment files `chosen` (all when none), and how many;
    `model_check` gives the registry's check when there is a file to check."""
    from envrepo.consume import lockfile

    paths = [p for p in chosen if p.suffix == ".yaml"] or ([] if chosen else files(repo))
    if not paths:
        return [], 0
    try:
        pinned = {name: pin.version for name, pin in lockfile.read(repo.root).pins.items()}
        found: list[Problem] = []
    except EnvrepoError as error:
        pinned, found = {}, list(error.problems) or [Problem("envrepo.lock", "", error.lines[0])]
    environments = {
        p.parent.name for p in repo.environments_dir.glob("*/environment.yaml") if p.is_file()
    }
    check = model_check()
    for path in paths:
        endpoint, schema_problems = load(path, repo)
        found += schema_problems
        if endpoint is not None:
            found += problems(endpoint, repo, pinned, environments, check)
    return sorted(set(found)), len(paths)
