"""Putting an image together from a base image and layers made on the host: the new image's
config (environment, labels, layer list) and a `docker load` archive that carries only the
new layers; the daemon already has the base's.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tarfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from envrepo.engine.docker import Docker
from envrepo.image.blobs import keep_config
from envrepo.image.layers import Layer

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


def epoch() -> int:
    """The time an image says it was made: SOURCE_DATE_EPOCH when set, else 0, never the
    clock, so that one spec hash is one image ID on any machine."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "0")
    return int(value) if value.isdigit() else 0


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
        "created": datetime.datetime.fromtimestamp(epoch(), datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
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


def present_chains(engine: Docker, references: Sequence[str]) -> set[str]:
    """Chain IDs the daemon has, read from the images named (the base, earlier builds)."""
    found: set[str] = set()
    for reference in references:
        image = engine.image(reference)
        if image is not None:
            found.update(chain_ids(image.layers))
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


def load_image(
    engine: Docker,
    config: Mapping[str, Any],
    layers: Sequence[Layer],
    present: Collection[str] = (),
) -> str:
    """Load an image made of the base's layers (already in the daemon) and `layers`; its ID.

    The archive carries only the layers whose chain the daemon does not have yet (`present`):
    after a one-pin change, that is the changed layer and those above it.
    """
    body = json.dumps(config, sort_keys=True).encode()
    keep_config(body)
    image_id = hashlib.sha256(body).hexdigest()
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
    engine.load(_tar_stream(members))
    return f"sha256:{image_id}"
