"""Putting an image together from a base image and layers made on the host, with docker-py:
the new image's config (environment, labels, layer list) and a `docker load` archive that
carries only the new layers; the daemon already has the base's. The lower layers can be
loaded while the upper ones are still being made.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tarfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import docker
import docker.errors

from envrepo.errors import EnvrepoError
from envrepo.layers import Layer

KEPT = ("Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "StopSignal")


def environment(
    base: Sequence[str], prepend_path: str | None, variables: Mapping[str, str]
) -> list[str]:
    """The base's environment with PATH extended and the variables set, in a stable order."""
    values = dict(item.split("=", 1) for item in base if "=" in item)
    if prepend_path is not None:
        path = values.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        if not path.startswith(prepend_path + ":"):
            values["PATH"] = f"{prepend_path}:{path}"
    values.update(variables)
    return [f"{key}={value}" for key, value in values.items()]


def image_config(
    base: Mapping[str, Any], layers: Sequence[Layer], env: list[str], labels: Mapping[str, str]
) -> dict[str, Any]:
    base_config = base.get("Config") or {}
    config = {key: base_config[key] for key in KEPT if base_config.get(key) is not None}
    config["Env"] = env
    config["Labels"] = {**(base_config.get("Labels") or {}), **labels}
    return {
        "architecture": base.get("Architecture", "amd64"),
        "os": base.get("Os", "linux"),
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "config": config,
        "rootfs": {
            "type": "layers",
            "diff_ids": [*base["RootFS"]["Layers"], *(layer.diff_id for layer in layers)],
        },
    }


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Docker's chain IDs: a layer's identity together with everything under it."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append(
                "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
            )
    return chains


def present_chains(client: docker.DockerClient, references: Sequence[str]) -> set[str]:
    """Chain IDs the daemon has, read from the images named (the base, earlier builds)."""
    found: set[str] = set()
    for reference in references:
        try:
            layers = client.images.get(reference).attrs["RootFS"]["Layers"]
        except docker.errors.ImageNotFound:
            continue
        found.update(chain_ids(layers))
    return found


def _tar_stream(members: Sequence[tuple[str, bytes | Path]]) -> Iterator[bytes]:
    """A tar archive of `members` (name, bytes or file), made as it is read: the layers go to
    the daemon without a copy of them on disk."""
    for name, content in members:
        info = tarfile.TarInfo(name)
        info.size = len(content) if isinstance(content, bytes) else content.stat().st_size
        yield info.tobuf(tarfile.PAX_FORMAT)
        if isinstance(content, bytes):
            yield content
        else:
            with content.open("rb") as handle:
                yield from iter(lambda: handle.read(1 << 20), b"")
        yield bytes(-info.size % tarfile.BLOCKSIZE)
    yield bytes(2 * tarfile.BLOCKSIZE)


def _identity(config: Mapping[str, Any]) -> tuple[bytes, str]:
    """An image config as the daemon stores it, and the image ID (hex) that names it."""
    body = json.dumps(config, sort_keys=True).encode()
    return body, hashlib.sha256(body).hexdigest()


def load(
    client: docker.DockerClient,
    config: Mapping[str, Any],
    layers: Sequence[Layer],
    present: Collection[str] = (),
) -> str:
    """Load an image made of the base's layers (already in the daemon) and `layers`; its ID.

    The archive carries only the layers whose chain the daemon does not have yet (`present`):
    after a one-pin change, that is the changed layer and those above it.
    """
    body, image_id = _identity(config)
    paths = [f"{diff.split(':', 1)[1]}/layer.tar" for diff in config["rootfs"]["diff_ids"]]
    manifest = [{"Config": f"{image_id}.json", "RepoTags": None, "Layers": paths}]
    members: list[tuple[str, bytes | Path]] = [
        ("manifest.json", json.dumps(manifest).encode()),
        (f"{image_id}.json", body),
    ]
    chains = chain_ids(config["rootfs"]["diff_ids"])[-len(layers) :] if layers else []
    for layer, chain in zip(layers, chains, strict=True):
        if chain not in present:
            members.append((f"{layer.diff_id.split(':', 1)[1]}/layer.tar", layer.path))
    try:
        load_image: Callable[..., Iterator[dict[str, Any]]] = client.api.load_image
        for chunk in load_image(_tar_stream(members), quiet=True):
            if "error" in chunk:
                raise EnvrepoError(f"docker load of the new image failed: {chunk['error']}")
    except docker.errors.APIError as error:
        raise EnvrepoError(
            f"docker load of the new image failed: {error.explanation or error}"
        ) from None
    return f"sha256:{image_id}"


class Loader:
    """Loads a new image while its upper layers are still being made.

    `offer(layers)` loads, in the background, an interim image of the base and `layers` (the
    new image's lowest), unless a load is running; `load` then sends only what the daemon
    lacks. Leaving waits for a load in flight and removes the interim images, whatever
    happened; their layers stay with the image that uses them.
    """

    def __init__(
        self, client: docker.DockerClient, base: Mapping[str, Any], present: Collection[str]
    ) -> None:
        self._client = client
        self._base = base
        self._present = set(present)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="envrepo-load")
        self._running: Future[list[str]] | None = None
        self._interim: list[str] = []

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pool.shutdown(wait=True)
        for image in self._interim:
            with suppress(docker.errors.APIError):
                self._client.images.remove(image)

    def _collect(self) -> None:
        """Wait for the load in flight; its error, if any, is the build's."""
        if self._running is not None:
            running, self._running = self._running, None
            self._present.update(running.result())

    def _interim_load(
        self, config: Mapping[str, Any], layers: Sequence[Layer], present: Collection[str]
    ) -> list[str]:
        load(self._client, config, layers, present)
        return chain_ids(config["rootfs"]["diff_ids"])

    def offer(self, layers: Sequence[Layer]) -> None:
        if self._running is not None and not self._running.done():
            return
        self._collect()
        config = image_config(self._base, layers, [], {})
        if chain_ids(config["rootfs"]["diff_ids"])[-1] in self._present:
            return
        self._interim.append(f"sha256:{_identity(config)[1]}")
        self._running = self._pool.submit(
            self._interim_load, config, list(layers), frozenset(self._present)
        )

    def load(self, config: Mapping[str, Any], layers: Sequence[Layer]) -> str:
        self._collect()
        return load(self._client, config, layers, self._present)
