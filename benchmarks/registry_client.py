"""Benchmark: the question envrepo asks a registry most ("is this hash built?", a manifest
HEAD), asked through envrepo's client (python-dxf) side by side with the peers it was chosen
over: oras-py and skopeo. Against two real distribution registries started here: a plain
loopback one, and one in token mode over TLS whose issuer signs real JWTs (as GHCR, ACR and
Docker Hub answer). Prints wall times; asserts nothing (these machines are noisy).

oras-py and skopeo are not project dependencies; the benchmark uses them when they are there:
    pip install --target /tmp/oras oras && ORAS_PATH=/tmp/oras    (oras-py)
    apt-get install skopeo                                        (skopeo)

Run: .venv/bin/python benchmarks/registry_client.py [--checks 50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import common  # noqa: F401  (puts the tests' registries on the path)

from envrepo.engine.registry import Registry
from registries import (
    Certificate,
    TokenIssuer,
    serving,
    start_registry,
    token_block,
)

USER, PASSWORD = "bench", "bench-password"
NAME = "bench/tiny"


def push_tiny_image(host: str, tls: bool) -> None:
    """A one-layer image, uploaded blob by blob with python-dxf (no Docker needed)."""
    from dxf import DXF

    def auth(dxf: DXF, response: object) -> None:
        dxf.authenticate(USER, PASSWORD, response=response)

    repo = DXF(host, NAME, auth=auth, insecure=not tls, tlsverify=False)
    layer = b"tiny layer"
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    for blob in (layer, config):
        repo.push_blob(data=iter([blob]), digest="sha256:" + hashlib.sha256(blob).hexdigest())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(layer),
                "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
            }
        ],
    }
    repo.set_manifest("v1", json.dumps(manifest))


def timed(check: Callable[[str], object], checks: int) -> tuple[float, float]:
    """(first check, median of the rest) in milliseconds: the first pays for the connection
    and the token."""
    times = []
    for index in range(checks):
        start = time.perf_counter()
        check("v1" if index % 2 == 0 else f"missing-{index}")
        times.append((time.perf_counter() - start) * 1000)
    return times[0], statistics.median(times[1:])


def envrepo_check(host: str) -> Callable[[str], object]:
    from envrepo.engine.credentials import Credentials

    registry = Registry(host, Credentials(USER, PASSWORD))
    return lambda tag: registry.manifest_digest(NAME, tag)


def oras_check(host: str, tls: bool) -> Callable[[str], object] | None:
    extra = os.environ.get("ORAS_PATH")
    if extra:
        sys.path.append(extra)
    try:
        import oras.provider
    except ImportError:
        return None
    client = oras.provider.Registry(host, insecure=not tls, tls_verify=False)
    client.auth.set_basic_auth(USER, PASSWORD)
    scheme = "https" if tls else "http"

    def check(tag: str) -> object:
        return client.do_request(f"{scheme}://{host}/v2/{NAME}/manifests/{tag}", "HEAD")

    return check


def skopeo_check(host: str, tls: bool) -> Callable[[str], object] | None:
    if shutil.which("skopeo") is None:
        return None

    def check(tag: str) -> object:
        return subprocess.run(
            [
                "skopeo",
                "inspect",
                "--raw",
                "--tls-verify=false",
                f"--creds={USER}:{PASSWORD}",
                f"docker://{host}/{NAME}:{tag}",
            ],
            capture_output=True,
            check=False,
        )

    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(
        f"{args.checks} manifest HEADs each, half of a tag that is there, half of one that is not"
    )
    with tempfile.TemporaryDirectory(prefix="envrepo-bench-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        signer = Certificate.make(folder, "signer")
        tls = Certificate.make(folder, "tls")
        issuer = TokenIssuer(signer, {USER: PASSWORD})
        realm = stack.enter_context(serving(issuer.handler(), tls))
        registries = {
            "plain (HTTP, no auth)": (start_registry(folder / "plain"), False),
            "token mode (TLS, JWT)": (
                start_registry(folder / "token", token_block(realm, signer), tls),
                True,
            ),
        }
        for running, _ in registries.values():
            stack.callback(running.stop)
        print(f"{'registry':24} {'client':22} {'first ms':>9} {'median ms':>10}")
        for label, (running, secure) in registries.items():
            push_tiny_image(running.host, secure)
            clients = {
                "envrepo (python-dxf)": envrepo_check(running.host),
                "oras-py": oras_check(running.host, secure),
                "skopeo inspect (CLI)": skopeo_check(running.host, secure),
            }
            for client, check in clients.items():
                if check is None:
                    print(f"{label:24} {client:22} {'not installed':>20}")
                    continue
                first, median = timed(check, args.checks)
                print(f"{label:24} {client:22} {first:9.1f} {median:10.1f}")


if __name__ == "__main__":
    main()
