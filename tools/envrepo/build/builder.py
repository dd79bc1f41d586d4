"""Building environments into images: each is found in the registry, found here, or built
now; every path goes through one check step and one tag-and-push step, and a build record is
written for each. Nothing is tagged before its tests pass, and an image whose spec hash the
registry already holds is never built again: it only gets the new tags."""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from envrepo import __version__
from envrepo.build import bases, blobs, naming, package_listing, shared_layers
from envrepo.build import plan as planning
from envrepo.build.assemble import environment, image_config, load_image, present_chains
from envrepo.build.bytecode import compile_staged
from envrepo.build.checks import (
    Listing,
    Python,
    check_image,
    installed_in,
    probe_python,
    tests_digest,
)
from envrepo.build.layers import Layer, conda_layers, is_cached, package_layers, venv_layer
from envrepo.build.stage import bytecode_jobs, packages, stage
from envrepo.build.stage_conda import stage_conda
from envrepo.engine.credentials import credentials
from envrepo.engine.docker import Docker, ImageInfo, Log
from envrepo.engine.registry import Registry, Upload, connect, split_image
from envrepo.errors import EnvrepoError, ExitCode, Problem, internal_error
from envrepo.hashing import hash_environments
from envrepo.lock.locked import Locked, read_locked
from envrepo.repo import git, graph
from envrepo.repo.config import CONFIG_FILE
from envrepo.repo.files import exclusive, write_text
from envrepo.repo.spec import (
    ENV_PREFIX,
    Catalog,
    Spec,
    get,
    needs_venv,
    python_agrees,
    site_packages,
)
from envrepo.validate import validate

Status = Literal["built", "cached"]
Tests = list[dict[str, Any]]


@dataclass(frozen=True)
class BuildRecord:
    """What a build found or made (JSON Schema: build-record.schema.json)."""

    name: str
    hash: str
    status: Status
    image: str
    digest: str | None
    tags: list[str]
    commit: str | None
    dirty: bool
    base: str
    packages: Listing
    platform: str
    tests: Tests
    tests_digest: str
    image_id: str | None
    log: str | None
    durations: dict[str, float]
    created: str
    size: int | None
    # The version of envrepo that wrote the record.
    envrepo: str = __version__


@dataclass(frozen=True)
class Settings:
    registry: Registry
    push: bool
    records: Path
    logs: Path
    commit: str | None
    # Environments whose folder, a base's folder or envrepo.yaml differs from the commit: their
    # image is not what the commit holds, so it gets no sha- tag.
    dirty: frozenset[str]
    source: str | None
    # Every environment: the repositories of an image's ancestors hold its base layers.
    specs: Mapping[str, Spec]


@dataclass(frozen=True)
class Found:
    """An image one of the paths found or made: in the daemon (`local`, an image ID) and, when
    the registry holds it, by manifest digest; the results of its tests when this exact image
    passed these exact tests before (from a build record, or the registry's `t-` tag)."""

    status: Status
    local: str | None = None
    digest: str | None = None
    results: tuple[Tests, Listing] | None = None
    size: int | None = None
    # The layer tars envrepo made or had for an image built now, by diff ID: its push
    # compresses those, not what the daemon would export.
    tars: Mapping[str, Path] = field(default_factory=dict)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _labels(locked: Locked) -> dict[str, str]:
    """What the image itself says of where it comes from: only what its spec hash covers, so
    that one hash is one image; the commit, the build time and the description belong to the
    tags, the build record and the index."""
    return {"dev.envrepo.name": locked.spec.name, "dev.envrepo.hash": locked.spec_hash.value}


class Builder:
    def __init__(self, engine: Docker, settings: Settings, echo: Log) -> None:
        self.engine = engine
        self.settings = settings
        self.echo = echo
        # Each environment built so far by the reference its children are built on: by
        # digest once it is in the registry.
        self.refs: dict[str, str] = {}
        self.durations: dict[str, float] = {}
        self.untagged: str | None = None

    def repository(self, name: str) -> str:
        return naming.repository(self.settings.registry.address, name)

    def build(self, locked: Locked) -> BuildRecord:
        spec, spec_hash = locked.spec, locked.spec_hash
        self.durations = {}
        started = time.monotonic()
        log_path = self.settings.logs / f"{spec.name}-{spec_hash.short}.log"
        tested = tests_digest(spec)
        # Two builds of one hash (two shells, two CI jobs on one runner) take turns: the second
        # finds what the first made, and neither's log or record is mixed with the other's.
        with exclusive(self.settings.records / f".{spec.name}-{spec_hash.short}.lock"):
            with self._log(spec, log_path) as log, self._forgotten_unless_tagged():
                found = (
                    self._in_registry(locked, tested, log)
                    or self._here(locked, tested, log)
                    or self._build_now(locked, log)
                )
                with self._uploading(locked, found, log) as uploading:
                    found, tests, packages_ = self._check(locked, found, log_path, log)
                    digest = self._tag_and_push(locked, found, tested, uploading, log)
                    if digest is not None and found.results is None:
                        package_listing.put(
                            self.settings.registry, spec.name, spec_hash, digest, packages_
                        )
            repo = self.repository(spec.name)
            self.refs[spec.name] = (
                f"{repo}@{digest}"
                if digest
                else naming.by_hash(self.settings.registry.address, spec.name, spec_hash)
            )
            self.durations["total"] = round(time.monotonic() - started, 2)
            tags = self._tags(locked)
            record = BuildRecord(
                name=spec.name,
                hash=spec_hash.value,
                status=found.status,
                image=f"{repo}:{tags[0]}",
                digest=digest,
                tags=[f"{repo}:{tag}" for tag in tags],
                commit=self.settings.commit,
                dirty=spec.name in self.settings.dirty,
                base=spec.base.describe(),
                packages=packages_,
                platform=spec.platforms[0],
                tests=tests,
                tests_digest=tested,
                image_id=found.local,
                log=str(log_path),
                durations=dict(self.durations),
                created=_now(),
                size=found.size,
            )
            path = self._record_path(spec.name, spec_hash.value)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
        return record

    @contextmanager
    def _forgotten_unless_tagged(self) -> Iterator[None]:
        """An image this build loaded or pulled (`self.untagged`) that fails its tests, or
        whose build stops before it is tagged, is removed: nothing untagged stays behind."""
        self.untagged = None
        try:
            yield
        except BaseException:
            if self.untagged is not None:
                self.engine.forget(self.untagged)
            raise
        finally:
            self.untagged = None

    @contextmanager
    def _log(self, spec: Spec, path: Path) -> Iterator[Log]:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as log_file:

            def log(line: str) -> None:
                log_file.write(line + "\n")
                log_file.flush()
                self.echo(f"{spec.name} | {line}")

            yield log

    @contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.durations[step] = round(time.monotonic() - started, 2)

    def _auth(self, reference: str) -> dict[str, str] | None:
        """What the daemon may send to the registry `reference` is in: the credentials meant
        for that host, and never the configured registry's anywhere else."""
        found = credentials(split_image(reference)[0], self.settings.registry.address)
        return found.for_docker() if found else None

    def _tags(self, locked: Locked) -> list[str]:
        dirty = locked.spec.name in self.settings.dirty
        return naming.build_tags(locked.spec_hash, None if dirty else self.settings.commit)

    def _record_path(self, name: str, spec_hash: str) -> Path:
        return self.settings.records / f"{name}-{spec_hash[:12]}.json"

    def _in_registry(self, locked: Locked, tested: str, log: Log) -> Found | None:
        """The registry holds the hash already: nothing to build. Its tests ran before when
        the registry's tag for these tests names the same image."""
        if not self.settings.push:
            return None
        name = locked.spec.name
        tag = naming.hash_tag(locked.spec_hash)
        registry = self.settings.registry
        digest = registry.manifest_digest(name, tag)
        if digest is None:
            return None
        listing = None
        tested_there = registry.manifest_digest(name, naming.tested_tag(tested)) == digest
        if tested_there:
            listing = package_listing.get(registry, name, locked.spec_hash, digest)
        if listing is not None:
            verdict = "its tests passed there"
        elif tested_there:
            verdict = "its package listing is not there, so its tests run again to read it"
        else:
            verdict = "its tests changed, they run now"
        log(f"{self.repository(name)}:{tag} is in the registry already; {verdict}")
        return Found("cached", digest=digest, results=([], listing) if listing else None)

    def _here(self, locked: Locked, tested: str, log: Log) -> Found | None:
        """Built on this machine before: the same hash is the same image. Its tests ran before
        when its record says this image passed these tests."""
        spec = locked.spec
        reference = naming.by_hash(self.settings.registry.address, spec.name, locked.spec_hash)
        image = self.engine.image(reference)
        if image is None:
            return None
        log(f"{reference} is built already")
        earlier = self._record_path(spec.name, locked.spec_hash.value)
        results = None
        if earlier.is_file():
            known = json.loads(earlier.read_text(encoding="utf-8"))
            # A record from before package listings had apt and conda is read again.
            if (known.get("image_id"), known.get("tests_digest")) == (image.id, tested) and set(
                known.get("packages") or ()
            ) == {"apt", "conda", "pip"}:
                results = (list(known["tests"]), dict(known["packages"]))
        return Found("cached", local=image.id, results=results)

    def _build_now(self, locked: Locked, log: Log) -> Found:
        spec = locked.spec
        with (
            tempfile.TemporaryDirectory(prefix=f"envrepo-build-{spec.name}-") as scratch,
            ExitStack() as stack,
        ):
            context = Path(scratch)
            base_ref = bases.reference(self.engine, locked, self.refs, log)
            base = bases.ensure(self.engine, base_ref, self._auth(base_ref), log)
            if spec.apt:
                from envrepo.build import apt

                with self._timed("apt"):
                    base = stack.enter_context(apt.installed(self.engine, base, spec.apt, log))
            with self._timed("stage"):
                layers = self._layers(locked, base, context, log)
            for layer in layers:
                log(
                    f"layer {layer.diff_id[7:19]} {layer.size / 1e6:7.1f} MB  "
                    f"{'made ' if layer.made else 'cached'}  {layer.created_by}"
                )
            variables = dict(spec.variables)
            if not spec.user_managed:
                variables = {"VIRTUAL_ENV": ENV_PREFIX, **variables}
            env = environment(
                base.env, None if spec.user_managed else f"{ENV_PREFIX}/bin", variables
            )
            config = image_config(base.attrs, layers, env, _labels(locked))
            with self._timed("build"):
                repo = self.repository(spec.name)
                # Earlier versions of the environment share most layers with this one.
                present = present_chains(self.engine, [base.id, *self.engine.images_of(repo)])
                image_id = load_image(self.engine, config, layers, present)
                self.untagged = image_id
            log(f"assembled {image_id[:19]} on {base_ref}")
        return Found("built", local=image_id, tars={layer.diff_id: layer.path for layer in layers})

    def _layers(self, locked: Locked, base: ImageInfo, context: Path, log: Log) -> list[Layer]:
        """The layers the environment adds to its base: the venv's skeleton, the conda
        packages, one per pip distribution."""
        spec = locked.spec
        site = PurePosixPath(site_packages(spec))
        venv = needs_venv(spec, locked.parent)
        python = self._python(locked, base, venv)
        layers = []
        if venv and python is not None:
            layers.append(venv_layer(python.path, python.version, site, log))
        conda_prefix = stage_conda(locked, context / "prefix")
        if conda_prefix is not None:
            layers += conda_layers(conda_prefix, log)
        return layers + self._pip_layers(locked, base, python, site, context, log)

    def _pip_layers(
        self,
        locked: Locked,
        base: ImageInfo,
        python: Python | None,
        site: PurePosixPath,
        context: Path,
        log: Log,
    ) -> list[Layer]:
        """A layer per locked pip distribution; only those not made before are installed and
        compiled."""
        cache_tag = python.cache_tag if python is not None else None
        base_has = (
            installed_in(self.engine, base.id, python, str(site)) if python and locked.pip else {}
        )
        wanted = packages(locked, site, cache_tag, base_has)
        missing = [package for package in wanted if not is_cached(package.key, log)]
        if missing and self.settings.push:
            fetched = shared_layers.fetch(self.settings.registry, [p.key for p in missing], log)
            missing = [package for package in missing if package.key not in fetched]
        target = stage(locked, context, missing) if missing else None
        if target is not None and python is not None and cache_tag is not None:
            with self._timed("compile"):
                jobs = bytecode_jobs(target, context, site)
                compile_staged(self.engine, base.id, python, context, jobs)
            log(f"compiled {len(jobs)} files to bytecode for {python.path}")
        return package_layers(wanted, target, site, locked.direct, cache_tag, log=log)

    def _python(self, locked: Locked, base: ImageInfo, venv: bool) -> Python | None:
        """The interpreter the environment's packages are for: the one its venv is made from,
        or the environment's own. None when it installs no packages or has none yet (a conda
        environment's python comes with its packages)."""
        spec, parent = locked.spec, locked.parent
        if not venv and not locked.installs_pip:
            return None
        command = (
            (parent.interpreter if parent is not None else "python3") if venv else spec.interpreter
        )
        found = probe_python(self.engine, base.id, command)
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
        if not python_agrees(found.version, spec.python):
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

    def _check(
        self, locked: Locked, found: Found, log_path: Path, log: Log
    ) -> tuple[Found, Tests, Listing]:
        """The one check step: the tests run unless this exact image passed these exact tests
        before; an image only in the registry is pulled for them. A failure means no tag and
        no push."""
        if found.results is not None:
            return found, *found.results
        spec = locked.spec
        local = found.local
        if local is None:
            repo = self.repository(spec.name)
            local = self.untagged = self.engine.pull(f"{repo}@{found.digest}", self._auth(repo)).id
        with self._timed("check"):
            tests, installed = check_image(self.engine, local, spec, log)
        failed = ", ".join(t["test"] for t in tests if not t["passed"])
        if failed:
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
        image = self.engine.image(local)
        return replace(found, local=local, size=image.size if image else None), tests, installed

    @contextmanager
    def _uploading(
        self, locked: Locked, found: Found, log: Log
    ) -> Iterator[Future[Uploaded] | None]:
        """The image's blobs go up while its tests run, when it is pushed and the registry
        lacks it. Should the tests fail or the build stop, the uploads stop too and no tag is
        written: the blobs that made it are found by the next push."""
        if not self.settings.push or found.digest is not None or found.local is None:
            yield None
            return
        stop = threading.Event()
        with ThreadPoolExecutor(1) as background:
            uploading = background.submit(self._upload, locked, found.local, found.tars, stop, log)
            try:
                yield uploading
            except BaseException:
                stop.set()
                with suppress(Exception):
                    uploading.result()
                raise

    def _upload(
        self,
        locked: Locked,
        image_id: str,
        tars: Mapping[str, Path],
        stop: threading.Event,
        log: Log,
    ) -> Uploaded:
        """Every blob of the image in the registry, from envrepo's own layers, compressed once
        and kept: what the registry has is skipped, what an ancestor's repository has is
        mounted."""
        with self._timed("upload"):
            image = self.engine.image(image_id)
            if image is None:
                raise EnvrepoError(f"image {image_id[:19]} went away before its push; build again")
            registry = self.settings.registry
            known, base_repositories = self._base_blobs(locked, image.layers)
            config, made = blobs.image_blobs(self.engine, image_id, image.layers, tars, log, known)
            name = locked.spec.name
            ancestors = [spec.name for spec in graph.ancestors(name, self.settings.specs)]
            done = Uploaded(
                Upload(image_id, len(config), blobs.config_path(image_id), blobs.CONFIG_TYPE),
                [
                    known.get(d)
                    or Upload(made[d].digest, made[d].size, made[d].path, blobs.LAYER_TYPE)
                    for d in image.layers
                ],
            )
            sources = [
                *base_repositories,
                *(registry.path(n) for n in [*ancestors, shared_layers.REPOSITORY]),
            ]
            count = registry.put_blobs(name, [done.config, *done.layers], sources, stop)
            if tars:
                shared_layers.publish(registry, name, tars, made.values(), log)
        log(f"uploaded {count} of {len(done.layers) + 1} blobs; the registry had the rest")
        return done

    def _base_blobs(
        self, locked: Locked, diff_ids: Sequence[str]
    ) -> tuple[dict[str, Upload], list[str]]:
        """The blobs of the base's layers, by diff ID, as the base's manifest names them, and
        the repositories (paths on the registry's host) to mount them from: nothing of the
        base is read back from the daemon. A parent's image is in this registry already; a
        `base.image` from another registry has its blobs copied registry to registry."""
        registry = self.settings.registry
        parent, image = locked.spec.parent, locked.base_image
        if parent is not None and "@" in self.refs.get(parent, ""):
            source, repository, reference = registry, parent, self.refs[parent].split("@", 1)[1]
            mount_from, copied = [registry.path(parent)], False
        elif image is not None and "@" in image:
            host, repository, _ = split_image(image)
            reference = image.split("@", 1)[1]
            # By host alone: the reference's repository path is whole.
            source = connect(host, registry.address)
            copied = host != registry.host
            mount_from = [] if copied else [repository]
        else:
            return {}, []
        manifest = source.platform_manifest(
            repository, reference, locked.spec.platforms[0].split("/", 1)[1]
        )
        layers = (manifest or {}).get("layers") or []
        blobs = {
            diff_id: Upload(
                layer["digest"],
                int(layer["size"]),
                None,
                layer["mediaType"],
                partial(source.blob, repository, layer["digest"]) if copied else None,
            )
            for diff_id, layer in zip(diff_ids, layers, strict=False)
        }
        return blobs, mount_from

    def _tag_and_push(
        self,
        locked: Locked,
        found: Found,
        tested: str,
        uploading: Future[Uploaded] | None,
        log: Log,
    ) -> str | None:
        """Every tag of the build on the image, and (when pushing) in the registry with the
        tag that says these tests passed on it, written after its blobs. The manifest digest,
        when the image is in the registry."""
        registry = self.settings.registry
        name = locked.spec.name
        tags = self._tags(locked)
        repo = self.repository(name)
        digest = None
        if uploading is not None:
            with self._timed("push"):
                done = uploading.result()
                all_tags = [*tags, naming.tested_tag(tested)]
                digest = registry.put_manifest(
                    name, done.config, done.layers, blobs.MANIFEST_TYPE, all_tags
                )
            log(f"pushed {repo}:{','.join(all_tags)}")
        elif self.settings.push:
            assert found.digest is not None  # found in the registry
            rest = [*tags[1:], naming.tested_tag(tested)]
            digest = registry.add_tags(name, tags[0], rest) or found.digest
        # Here too, the tags come after everything else has succeeded.
        if found.local is not None:
            for tag in tags:
                self.engine.tag(found.local, repo, tag)
            self.untagged = None
        return digest


@dataclass(frozen=True)
class Uploaded:
    """An image's blobs, in the registry."""

    config: Upload
    layers: list[Upload]


@dataclass
class Outcome:
    records: list[BuildRecord] = field(default_factory=list)
    failed: list[EnvrepoError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    internal: bool = False  # a failure was a bug in envrepo


@dataclass(frozen=True)
class Request:
    """What `envrepo build` is asked: NAMEs (with what they are built on), or what the plan
    lists (`changed`), or everything; whether to push; the registry given on the command line."""

    names: tuple[str, ...] = ()
    changed: bool = False
    push: bool = False
    registry: str | None = None


def _named(spec: Spec, error: EnvrepoError) -> EnvrepoError:
    """The error with every line naming the environment it is about."""
    lines = [
        line if line.startswith(spec.display) else f"{spec.display}: {line}" for line in error.lines
    ]
    return EnvrepoError(*lines, code=error.code)


def _refuse_invalid(catalog: Catalog, names: set[str] | None) -> None:
    problems = [p for p in validate(catalog, (), names) if p.is_error]
    if problems:
        raise EnvrepoError(*problems, code=ExitCode.PROBLEMS)


def build_environments(catalog: Catalog, request: Request, echo: Log) -> Outcome:
    """Build what `request` chooses, parents first; a failure skips what is built on it, not
    the others. Nothing is built while an environment it takes on (all of them, unless NAMEs
    are given) does not validate: a stale lock, a folder that does not load included."""
    host = (
        naming.required_registry(catalog.repo, request.registry)
        if request.push
        else naming.local_or_registry(catalog.repo, request.registry)
    )
    registry = connect(host, host)
    named = None
    if request.names and not request.changed:
        named = graph.with_ancestors([get(catalog, n).name for n in request.names], catalog.specs)
    try:
        hashes = hash_environments(catalog, None if named is None else sorted(named))
    except EnvrepoError:
        # What hashing cannot read, validate names with its rule (and exit code).
        _refuse_invalid(catalog, named)
        raise
    chosen = planning.to_build(catalog, hashes, registry, request.names, request.changed)
    _refuse_invalid(catalog, None if named is None else set(chosen))
    root = catalog.repo.root
    parent_of = graph.parents(catalog.specs)
    config = [root / CONFIG_FILE] if (root / CONFIG_FILE).is_file() else []
    dirty = frozenset(
        name
        for name in chosen
        if git.differs(
            root, [*config, *(catalog.specs[n].folder for n in graph.chain(name, parent_of))]
        )
    )
    settings = Settings(
        registry=registry,
        push=request.push,
        records=root / ".envrepo" / "builds",
        logs=root / ".envrepo" / "logs",
        commit=git.head_commit(root),
        dirty=dirty,
        source=os.environ.get("ENVREPO_SOURCE_URL"),
        specs=catalog.specs,
    )
    builder = Builder(Docker(), settings, echo)
    outcome = Outcome()
    broken: set[str] = set()
    for name in graph.ordered(catalog.specs, chosen):
        spec = catalog.specs[name]
        if broken & set(graph.chain(name, parent_of)[1:]):
            outcome.skipped.append(name)
            broken.add(name)
            continue
        if spec.parent is not None and spec.parent not in builder.refs:
            builder.refs[spec.parent] = naming.by_hash(host, spec.parent, hashes[spec.parent])
        try:
            locked = read_locked(spec, hashes[name], catalog.specs.get(spec.parent or ""))
            outcome.records.append(builder.build(locked))
        except EnvrepoError as error:
            outcome.failed.append(_named(spec, error))
            broken.add(name)
        except Exception as error:  # noqa: BLE001 - a bug with one environment spares the rest
            outcome.failed.append(_named(spec, EnvrepoError(internal_error(error))))
            outcome.internal = True
            broken.add(name)
    return outcome
