"""Building one environment into an image: it is found in the registry, found here, or made
now; every path goes through one check step and one tag step, and a build record is written
for each. Nothing is tagged before its tests pass, and an image whose spec hash the registry
already holds is never built again: it only gets the new tags."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from envrepo.engine.credentials import credentials
from envrepo.engine.docker import Docker, Log
from envrepo.engine.reference import split_image
from envrepo.engine.registry import Registry
from envrepo.errors import EnvrepoError, Problem
from envrepo.image import find, naming, package_listing, record
from envrepo.image.attempt import Attempt, attempt
from envrepo.image.checks import Listing, check_image, tests_digest
from envrepo.image.find import Found
from envrepo.image.make import make
from envrepo.image.push import Pusher
from envrepo.image.record import BuildRecord, Tests
from envrepo.lock.locked import Locked
from envrepo.repo import documents
from envrepo.repo.files import exclusive
from envrepo.repo.spec import Spec


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
    # Every environment: the repositories of an image's ancestors hold its base layers.
    specs: Mapping[str, Spec]


class Builder:
    def __init__(self, engine: Docker, settings: Settings, echo: Log) -> None:
        self.engine = engine
        self.settings = settings
        self.echo = echo
        # Each environment built so far by the reference its children are built on: by
        # digest once it is in the registry.
        self.refs: dict[str, str] = {}
        self.pusher = (
            Pusher(engine, settings.registry, settings.specs, self.refs) if settings.push else None
        )

    def repository(self, name: str) -> str:
        return naming.repository(self.settings.registry.address, name)

    def build(self, locked: Locked) -> BuildRecord:
        spec, spec_hash = locked.spec, locked.spec_hash
        settings = self.settings
        started = time.monotonic()
        log_path = settings.logs / f"{spec.name}-{spec_hash.short}.log"
        tested = tests_digest(spec)
        # Two builds of one hash (two shells, two CI jobs on one runner) take turns: the second
        # finds what the first made, and neither's log or record is mixed with the other's.
        with exclusive(settings.records / f".{spec.name}-{spec_hash.short}.lock"):
            with attempt(self.engine, spec.name, log_path, self.echo) as current:
                in_registry = self.pusher is not None and find.in_registry(
                    settings.registry, locked, tested, current.log
                )
                found = (
                    in_registry
                    or find.here(
                        self.engine,
                        settings.registry.address,
                        settings.records,
                        locked,
                        tested,
                        current.log,
                    )
                    or make(
                        self.engine,
                        settings.registry,
                        settings.push,
                        self.refs,
                        self._auth,
                        locked,
                        current,
                    )
                )
                digest, tests, listing, found = self._check_and_tag(locked, found, tested, current)
            repo = self.repository(spec.name)
            self.refs[spec.name] = (
                f"{repo}@{digest}"
                if digest
                else naming.by_hash(settings.registry.address, spec.name, spec_hash)
            )
            current.durations["total"] = round(time.monotonic() - started, 2)
            tags = self._tags(locked)
            built = BuildRecord(
                name=spec.name,
                hash=spec_hash.value,
                status=found.status,
                image=f"{repo}:{tags[0]}",
                digest=digest,
                tags=[f"{repo}:{tag}" for tag in tags],
                commit=settings.commit,
                dirty=spec.name in settings.dirty,
                base=spec.base.describe(),
                packages=listing,
                platform=spec.platforms[0],
                tests=tests,
                tests_digest=tested,
                image_id=found.local,
                log=str(log_path),
                durations=dict(current.durations),
                created=documents.now(),
                size=found.size,
            )
            record.write(settings.records, built)
        return built

    def _check_and_tag(
        self, locked: Locked, found: Found, tested: str, current: Attempt
    ) -> tuple[str | None, Tests, Listing, Found]:
        """The check step, with the blobs going up meanwhile, then the tags: in the registry
        when pushing, then on the image here."""
        tags = self._tags(locked)
        if self.pusher is None:
            found, tests, listing = self._check(locked, found, current)
            digest = None
        else:
            with self.pusher.uploading(locked, found, current) as uploading:
                found, tests, listing = self._check(locked, found, current)
                digest = self.pusher.tag(locked, found, tags, tested, uploading, current)
                if digest is not None and found.results is None:
                    package_listing.put(
                        self.settings.registry, locked.spec.name, locked.spec_hash, digest, listing
                    )
        if found.local is not None:
            for tag in tags:
                self.engine.tag(found.local, self.repository(locked.spec.name), tag)
            current.untagged = None
        return digest, tests, listing, found

    def _auth(self, reference: str) -> dict[str, str] | None:
        """What the daemon may send to the registry `reference` is in: the credentials meant
        for that host, and never the configured registry's anywhere else."""
        found = credentials(split_image(reference)[0], self.settings.registry.address)
        return found.for_docker() if found else None

    def _tags(self, locked: Locked) -> list[str]:
        dirty = locked.spec.name in self.settings.dirty
        return naming.build_tags(locked.spec_hash, None if dirty else self.settings.commit)

    def _check(
        self, locked: Locked, found: Found, current: Attempt
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
            local = current.untagged = self.engine.pull(
                f"{repo}@{found.digest}", self._auth(repo)
            ).id
        with current.timed("check"):
            tests, installed = check_image(self.engine, local, spec, locked.direct, current.log)
        failed = ", ".join(t["test"] for t in tests if not t["passed"])
        if failed:
            raise EnvrepoError(
                Problem(
                    f"{spec.display}/tests",
                    "",
                    (
                        f"{failed} failed inside the image, so it is neither tagged nor pushed; "
                        f"see {current.log_path}"
                    ),
                )
            )
        image = self.engine.image(local)
        return replace(found, local=local, size=image.size if image else None), tests, installed
