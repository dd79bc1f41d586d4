"""Pushing an image: its blobs go up while its tests run (from envrepo's own layer tars,
compressed once; what the registry has is skipped, an ancestor's are mounted), and its tags
come last, after everything else has succeeded."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from envrepo.engine import oci
from envrepo.engine.docker import Docker
from envrepo.engine.reference import split_image
from envrepo.engine.registry import Registry, Upload, connect
from envrepo.errors import EnvrepoError
from envrepo.image import blobs, naming, shared_layers
from envrepo.image.attempt import Attempt
from envrepo.image.find import Found
from envrepo.index.tags import tested_tag
from envrepo.lock.locked import Locked
from envrepo.repo import graph
from envrepo.repo.spec import Spec


@dataclass(frozen=True)
class Uploaded:
    """An image's blobs, in the registry."""

    config: Upload
    layers: list[Upload]


@dataclass(frozen=True)
class Pusher:
    engine: Docker
    registry: Registry
    # Every environment: the repositories of an image's ancestors hold its base layers.
    specs: Mapping[str, Spec]
    # Each environment built so far by the reference its children are built on.
    refs: Mapping[str, str]

    @contextmanager
    def uploading(
        self, locked: Locked, found: Found, attempt: Attempt
    ) -> Iterator[Future[Uploaded] | None]:
        """The image's blobs go up while its tests run, when the registry lacks it. Should the
        tests fail or the build stop, the uploads stop too and no tag is written: the blobs
        that made it are found by the next push."""
        if found.digest is not None or found.local is None:
            yield None
            return
        stop = threading.Event()
        with ThreadPoolExecutor(1) as background:
            uploading = background.submit(
                self._upload, locked, found.local, found.tars, stop, attempt
            )
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
        attempt: Attempt,
    ) -> Uploaded:
        registry, log = self.registry, attempt.log
        with attempt.timed("upload"):
            image = self.engine.image(image_id)
            if image is None:
                raise EnvrepoError(f"image {image_id[:19]} went away before its push; build again")
            known, base_repositories = self._base_blobs(locked, image.layers)
            config, made = blobs.image_blobs(self.engine, image_id, image.layers, tars, log, known)
            name = locked.spec.name
            ancestors = [spec.name for spec in graph.ancestors(name, self.specs)]
            done = Uploaded(
                Upload(image_id, len(config), blobs.config_path(image_id), oci.DOCKER_CONFIG),
                [
                    known.get(d)
                    or Upload(made[d].digest, made[d].size, made[d].path, oci.DOCKER_LAYER)
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
        registry = self.registry
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
        found = {
            diff_id: Upload(
                layer["digest"],
                int(layer["size"]),
                None,
                layer["mediaType"],
                partial(source.blob, repository, layer["digest"]) if copied else None,
            )
            for diff_id, layer in zip(diff_ids, layers, strict=False)
        }
        return found, mount_from

    def tag(
        self,
        locked: Locked,
        found: Found,
        tags: Sequence[str],
        tested: str,
        uploading: Future[Uploaded] | None,
        attempt: Attempt,
    ) -> str | None:
        """Every tag of the build in the registry with the tag that says these tests passed
        on it, written after its blobs; the manifest digest."""
        name = locked.spec.name
        all_tags = [*tags, tested_tag(tested)]
        if uploading is None:
            assert found.digest is not None  # found in the registry
            return self.registry.add_tags(name, tags[0], all_tags[1:]) or found.digest
        with attempt.timed("push"):
            done = uploading.result()
            digest = self.registry.put_manifest(
                name, done.config, done.layers, oci.DOCKER_MANIFEST, all_tags
            )
        attempt.log(f"pushed {naming.repository(self.registry.address, name)}:{','.join(all_tags)}")
        return digest
