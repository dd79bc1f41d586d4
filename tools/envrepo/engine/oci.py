"""The media types and manifests of what envrepo puts in a registry, spelled once. An image is
a Docker image manifest, which every engine's `docker pull` takes; an artifact (a shared
layer, a package listing) is an OCI 1.1 image manifest with the empty config and an
`artifactType`, so that no tool takes it for an image to run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Protocol

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_BODY = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_BODY).hexdigest()
# The artifact types envrepo writes.
SHARED_LAYER = "application/vnd.envrepo.layer.v1"
PACKAGES = "application/vnd.envrepo.packages.v1+json"


class Described(Protocol):
    @property
    def digest(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def media_type(self) -> str: ...


def descriptor(blob: Described) -> dict[str, object]:
    return {"mediaType": blob.media_type, "size": blob.size, "digest": blob.digest}


def manifest_body(
    config: Described,
    layers: Sequence[Described],
    media_type: str,
    annotations: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
) -> str:
    manifest: dict[str, object] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        manifest["artifactType"] = artifact_type
    manifest["config"] = descriptor(config)
    manifest["layers"] = [descriptor(layer) for layer in layers]
    if annotations:
        manifest["annotations"] = dict(annotations)
    return json.dumps(manifest, indent=3)
