"""Building environments into images with docker-py: build, test inside the image, tag,
push, and a build record for each. Nothing is tagged before its tests pass, and an image
whose spec hash the registry already holds is never built again: it only gets the new tags."""

from __future__ import annotations

import datetime
import json
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors
from docker.models.images import Image

from envrepo.build import bootstrap
from envrepo.build.assemble import environment, image_config, load, present_chains
from envrepo.build.bytecode import compile_staged
from envrepo.build.checks import Log, Python, check_image, probe_python
from envrepo.build.layers import Layer, conda_layers, is_cached, package_layers, venv_layer
from envrepo.build.render import ENV_PREFIX, needs_venv, python_dir
from envrepo.build.stage import installs_pip, locked, sources, stage
from envrepo.build.stage_conda import stage_conda
from envrepo.engine.registry import Registry
from envrepo.errors import EnvrepoError, Problem
from envrepo.hashing import SpecHash
from envrepo.repo import graph
from envrepo.repo.files import write_text
from envrepo.repo.spec import Catalog, Spec


@dataclass
class BuildRecord:
    name: str
    hash: str
    status: str
    image: str
    digest: str | None
    tags: list[str]
    commit: str | None
    base: str
    packages: dict[str, str] = field(default_factory=dict)
    tests: list[dict[str, Any]] = field(default_factory=list)
    log: str | None = None
    durations: dict[str, float] = field(default_factory=dict)
    created: str = ""
    size: int | None = None


@dataclass(frozen=True)
class Settings:
    registry: Registry
    push: bool
    records: Path
    logs: Path
    commit: str | None
    source: str | None


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(version="auto", timeout=900)
        client.ping()
    except docker.errors.DockerException as error:
        raise EnvrepoError(
            f"Docker does not answer ({error.__class__.__name__}); start it "
            "(scripts/services.sh) or set DOCKER_HOST"
        ) from None
    return client


def git_commit(root: Path) -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def tags_for(digest: SpecHash, commit: str | None) -> list[str]:
    tags = [f"h-{digest.short}"]
    if commit:
        tags.append(f"sha-{commit[:12]}")
    return [*tags, "latest"]


def _labels(spec: Spec, digest: SpecHash, settings: Settings) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.created": datetime.datetime.now(datetime.UTC).isoformat(),
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.description": spec.description,
        "dev.envrepo.name": spec.name,
        "dev.envrepo.hash": digest.digest,
    }
    if settings.commit:
        labels["org.opencontainers.image.revision"] = settings.commit
    if settings.source:
        labels["org.opencontainers.image.source"] = settings.source
    return labels


def direct_names(spec: Spec) -> set[str]:
    """The packages the environment names itself, canonical."""
    from envrepo.inputs import requirements

    names: set[str] = set()
    if spec.pip is not None:
        parsed = requirements.parse(spec.folder / spec.pip, spec.folder, Path(spec.display))
        names = {requirements.canonical(r.name) for r in parsed.requirements}
    return names


class Builder:
    def __init__(
        self, catalog: Catalog, hashes: dict[str, SpecHash], settings: Settings, echo: Log
    ) -> None:
        self.catalog = catalog
        self.hashes = hashes
        self.settings = settings
        self.echo = echo
        self.client = docker_client()
        self.refs: dict[str, str] = {}

    def repository(self, name: str) -> str:
        return f"{self.settings.registry.host}/{name}"

    def _local(self, reference: str) -> Image | None:
        try:
            return self.client.images.get(reference)
        except docker.errors.ImageNotFound:
            return None

    def _base_ref(self, spec: Spec, log: Log) -> str:
        if spec.base.kind == "environment":
            return self.refs[spec.base.value]
        if spec.base.kind == "image":
            from envrepo.lock import image as lock_image
            from envrepo.lock.files import lock_inputs

            item = next((i for i in lock_inputs(spec) if i.field == "image"), None)
            return spec.base.value if item is None else lock_image.locked_reference(spec, item)
        if spec.base.bootstrap is not None:
            return bootstrap.build_root_image(
                spec.base.bootstrap, lambda tag: self._local(tag) is not None, log
            )
        tag = f"envrepo-base/{spec.name}:h-{self.hashes[spec.name].short}"
        self._docker_build(spec.folder, spec.base.value, tag, {}, log)
        return tag

    def _docker_build(
        self, path: Path, dockerfile: str, tag: str | None, labels: dict[str, str], log: Log
    ) -> str:
        image_id = None
        try:
            for chunk in self.client.api.build(
                path=str(path),
                dockerfile=dockerfile,
                tag=tag,
                labels=labels,
                rm=True,
                forcerm=True,
                network_mode="none",
                decode=True,
                pull=False,
            ):
                if "stream" in chunk:
                    for line in chunk["stream"].splitlines():
                        if line.strip():
                            log(line)
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    raise EnvrepoError(f"the build failed: {chunk['error'].strip()}")
        except docker.errors.APIError as error:
            raise EnvrepoError(f"the build failed: {error.explanation or error}") from None
        if image_id is None:
            raise EnvrepoError("the build produced no image; see the build log")
        return str(image_id)

    def build(self, spec: Spec) -> BuildRecord:
        digest = self.hashes[spec.name]
        settings = self.settings
        repo = self.repository(spec.name)
        tags = tags_for(digest, settings.commit)
        hash_tag = f"h-{digest.short}"
        log_path = settings.logs / f"{spec.name}-{digest.short}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        record = BuildRecord(
            name=spec.name,
            hash=digest.digest,
            status="built",
            image=f"{repo}:{hash_tag}",
            digest=None,
            tags=[f"{repo}:{t}" for t in tags],
            commit=settings.commit,
            base=spec.base.describe(),
            log=str(log_path),
            created=datetime.datetime.now(datetime.UTC).isoformat(),
        )
        with log_path.open("w", encoding="utf-8") as log_file:

            def log(line: str) -> None:
                log_file.write(line + "\n")
                log_file.flush()
                self.echo(f"{spec.name} | {line}")

            existing = (
                settings.registry.manifest_digest(spec.name, hash_tag) if settings.push else None
            )
            if existing is not None:
                log(f"{repo}:{hash_tag} is in the registry already; adding tags only")
                record.digest = (
                    settings.registry.add_tags(spec.name, hash_tag, tags[1:]) or existing
                )
                record.status = "cached"
                self.refs[spec.name] = f"{repo}@{record.digest}"
                record.durations["total"] = round(time.monotonic() - started, 2)
                return self._finish(record)
            image = self._local(f"{repo}:{hash_tag}")
            if image is not None:
                # Built here before: the same hash is the same image, so it is tagged (and
                # pushed) as it is, with what its record says or what the image shows.
                log(f"{repo}:{hash_tag} is built already")
                for tag in tags[1:]:
                    image.tag(repo, tag)
                record.status = "cached"
                earlier = self._record_path(record)
                if earlier.is_file():
                    known = json.loads(earlier.read_text(encoding="utf-8"))
                    record.packages, record.tests = known["packages"], known["tests"]
                else:
                    record.tests, record.packages = check_image(
                        self.client, record.image, spec, log
                    )
                self.refs[spec.name] = f"{repo}:{hash_tag}"
                if settings.push:
                    record.digest = self._push(repo, tags, log)
                    self.refs[spec.name] = f"{repo}@{record.digest}"
                record.durations["total"] = round(time.monotonic() - started, 2)
                return self._finish(record)
            with tempfile.TemporaryDirectory(prefix=f"envrepo-build-{spec.name}-") as scratch:
                context = Path(scratch)
                base_ref = self._base_ref(spec, log)
                base = self._ensure(base_ref, log)
                if spec.apt:
                    from envrepo.build import apt

                    apt_started = time.monotonic()
                    base = self.client.images.get(
                        apt.install(self.client, str(base.id), spec.apt, log)
                    )
                    record.durations["apt"] = round(time.monotonic() - apt_started, 2)
                parent = self.catalog.specs.get(spec.parent or "")
                stage_started = time.monotonic()
                site = PurePosixPath(python_dir(spec))
                venv = needs_venv(spec, parent)
                python = self._python(base, parent, spec, venv)
                new_layers = []
                if venv and python is not None:
                    new_layers.append(venv_layer(python.path, python.version, site))
                if spec.conda is not None:
                    conda_prefix = stage_conda(spec, context)
                    if conda_prefix is not None:
                        new_layers += conda_layers(conda_prefix)
                new_layers += self._pip_layers(spec, base, python, site, context, record, log)
                record.durations["stage"] = round(time.monotonic() - stage_started, 2)
                for layer in new_layers:
                    log(
                        f"layer {layer.diff_id[7:19]} {layer.size / 1e6:7.1f} MB  "
                        f"{'made ' if layer.made else 'cached'}  {layer.created_by}"
                    )
                variables = dict(spec.variables)
                if not spec.user_managed:
                    variables = {"VIRTUAL_ENV": ENV_PREFIX, **variables}
                env = environment(
                    base.attrs["Config"].get("Env") or [],
                    None if spec.user_managed else f"{ENV_PREFIX}/bin",
                    variables,
                )
                config = image_config(base.attrs, new_layers, env, _labels(spec, digest, settings))
                load_started = time.monotonic()
                previous = [f"{repo}:{t}" for t in ("latest", hash_tag)]
                present = present_chains(self.client, [str(base.id), *previous])
                image_id = load(self.client, config, new_layers, present)
                record.durations["build"] = round(time.monotonic() - load_started, 2)
                log(f"assembled {image_id[:19]} on {base_ref}")
            check_started = time.monotonic()
            record.tests, record.packages = check_image(self.client, image_id, spec, log)
            record.durations["check"] = round(time.monotonic() - check_started, 2)
            if not all(t["passed"] for t in record.tests):
                failed = ", ".join(t["test"] for t in record.tests if not t["passed"])
                raise EnvrepoError(
                    Problem(
                        f"{spec.display}/tests",
                        "",
                        (
                            f"{failed} failed inside the image, so it is neither tagged nor pushed; "
                            f"see {log_path}"
                        ),
                    )
                )
            image = self.client.images.get(image_id)
            for tag in tags:
                image.tag(repo, tag)
            record.size = image.attrs.get("Size")
            if settings.push:
                push_started = time.monotonic()
                record.digest = self._push(repo, tags, log)
                record.durations["push"] = round(time.monotonic() - push_started, 2)
                self.refs[spec.name] = f"{repo}@{record.digest}"
            else:
                self.refs[spec.name] = f"{repo}:{hash_tag}"
        record.durations["total"] = round(time.monotonic() - started, 2)
        return self._finish(record)

    def _ensure(self, reference: str, log: Log) -> Image:
        """The base image in the daemon, pulled from its registry when it is not there."""
        image = self._local(reference)
        if image is not None:
            return image
        log(f"pulling {reference}")
        creds = self.settings.registry.creds
        try:
            return self.client.images.pull(
                reference, auth_config=creds.for_docker() if creds else None
            )
        except docker.errors.APIError as error:
            raise EnvrepoError(
                f"the base image {reference} cannot be pulled: {error.explanation or error}"
            ) from None

    def _pip_layers(
        self,
        spec: Spec,
        base: Image,
        python: Python | None,
        site: PurePosixPath,
        context: Path,
        record: BuildRecord,
        log: Log,
    ) -> list[Layer]:
        """A layer per locked pip distribution; only those not made before are installed and
        compiled."""
        cache_tag = python.cache_tag if python is not None else None
        packages = locked(spec, site, cache_tag)
        missing = [package for package in packages if not is_cached(package.key)]
        target = stage(spec, context, missing) if missing else None
        if target is not None and python is not None and cache_tag is not None:
            started = time.monotonic()
            jobs = sources(target, context, site)
            compile_staged(self.client, str(base.id), python, context, jobs)
            record.durations["compile"] = round(time.monotonic() - started, 2)
            log(f"compiled {len(jobs)} files to bytecode for {python.path}")
        return package_layers(packages, target, site, direct_names(spec), cache_tag)

    def _python(self, base: Image, parent: Spec | None, spec: Spec, venv: bool) -> Python | None:
        """The interpreter the environment's packages are for: the one its venv is made from,
        or the environment's own. None when it installs no packages or has none yet (a conda
        environment's python comes with its packages)."""
        if not venv and not installs_pip(spec):
            return None
        command = (
            (parent.interpreter if parent is not None else "python3") if venv else spec.interpreter
        )
        found = probe_python(self.client, str(base.id), command)
        if found is None:
            if not venv:
                return None
            raise EnvrepoError(
                Problem(
                    spec.spec_display,
                    "base",
                    (
                        f"the base image has no working {command} to make the environment's venv; "
                        "use a base with python3, or user_managed: true"
                    ),
                )
            )
        if not found.version.startswith(spec.python + ".") and found.version != spec.python:
            raise EnvrepoError(
                Problem(
                    spec.spec_display,
                    "python",
                    (
                        f"is {spec.python!r} but the base image's python is {found.version}; "
                        "make them agree"
                    ),
                )
            )
        return found

    def _push(self, repo: str, tags: Sequence[str], log: Log) -> str:
        creds = self.settings.registry.creds
        auth = creds.for_docker() if creds is not None else None
        digest = ""
        for tag in tags:
            for chunk in self.client.images.push(
                repo, tag=tag, auth_config=auth, stream=True, decode=True
            ):
                if "error" in chunk:
                    raise EnvrepoError(f"push of {repo}:{tag} failed: {chunk['error'].strip()}")
                if "aux" in chunk and "Digest" in chunk["aux"]:
                    digest = chunk["aux"]["Digest"]
            log(f"pushed {repo}:{tag}")
        return digest

    def _record_path(self, record: BuildRecord) -> Path:
        return self.settings.records / f"{record.name}-{record.hash[:12]}.json"

    def _finish(self, record: BuildRecord) -> BuildRecord:
        path = self._record_path(record)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
        return record


@dataclass
class Outcome:
    records: list[BuildRecord] = field(default_factory=list)
    failed: list[EnvrepoError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def build_all(builder: Builder, names: Sequence[str]) -> Outcome:
    """Build `names` parents first; a failure skips what is built on it, not the others."""
    outcome = Outcome()
    broken: set[str] = set()
    catalog = builder.catalog
    parent_of = graph.parents(catalog.specs)
    for name in graph.ordered(catalog.specs, names):
        spec = catalog.specs[name]
        ancestors = {a.name for a in graph.ancestors(name, catalog.specs, parent_of)}
        if ancestors & broken:
            outcome.skipped.append(name)
            broken.add(name)
            continue
        if spec.parent is not None and spec.parent not in builder.refs:
            parent_hash = builder.hashes[spec.parent]
            builder.refs[spec.parent] = f"{builder.repository(spec.parent)}:h-{parent_hash.short}"
        try:
            outcome.records.append(builder.build(spec))
        except EnvrepoError as error:
            outcome.failed.append(error)
            broken.add(name)
    return outcome
