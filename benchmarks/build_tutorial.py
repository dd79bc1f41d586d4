"""Benchmark: building the tutorial environment, side by side in one run with a plain
Dockerfile that runs `pip install -r requirements.txt` from the package index on the same
base. Prints times and image sizes; asserts nothing (these machines are noisy).

  (a) cold build of envrepo-tutorial: empty download cache, its base already built
  (b) rebuild after changing one pin (the lock is made first and timed apart)
      (a) and (b) build into the local Docker Engine; the push is timed apart, as (d) has none
  (c) no-op build of the whole curated tree, --push: nothing to build or push
  (d) plain Dockerfile, pip install inside the build, cold and after adding one package

Needs Docker and a registry: run scripts/services.sh first (the README's commands do).
Run: .venv/bin/python benchmarks/build_tutorial.py
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
from common import BIN, PROJECT, curated_copy, free_port, run_timed

NAME = "envrepo-tutorial"
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))


def forget_layers_on(client: docker.DockerClient, base: str) -> None:
    """Make a build cold in the daemon too: no image built on `base` is kept, whatever its
    tags, so that no layer of the tutorial (or of the plain build) is there already."""
    below = client.images.get(base).attrs["RootFS"]["Layers"]
    for image in client.images.list(all=True):
        layers = image.attrs["RootFS"]["Layers"]
        if len(layers) > len(below) and layers[: len(below)] == below:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(image.id, force=True)


def plain_build(
    client: docker.DockerClient, base: str, context: Path, requirements: str
) -> tuple[float, int]:
    context.mkdir(exist_ok=True)
    (context / "requirements.txt").write_text(requirements)
    shutil.copy(CA_BUNDLE, context / "ca.crt")
    (context / "Dockerfile").write_text(
        f"FROM {base}\nCOPY ca.crt /etc/ssl/certs/host-ca.crt\nCOPY requirements.txt /tmp/\n"
        "RUN PIP_CERT=/etc/ssl/certs/host-ca.crt python -m pip install --no-cache-dir "
        "-r /tmp/requirements.txt\n"
    )
    os.sync()
    start = time.perf_counter()
    image, _ = client.images.build(path=str(context), tag="envrepo-bench/plain:latest", rm=True)
    return time.perf_counter() - start, int(image.attrs["Size"])


def main() -> None:
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="envrepo-bench-") as scratch:
        work = Path(scratch)
        repo = curated_copy(work / "repo")
        port = free_port()
        registry_dir = work / "registry"
        subprocess.run(
            [
                "bash",
                str(PROJECT / "scripts/services.sh"),
                "registry",
                str(port),
                str(registry_dir),
            ],
            check=True,
        )
        host = f"127.0.0.1:{port}"
        try:
            # Cold: an empty download cache, an empty layer cache, no tutorial layers in Docker.
            env = {
                **os.environ,
                "UV_CACHE_DIR": str(work / "uv-cache"),
                "XDG_CACHE_HOME": str(work / "cache"),
                "CI": "true",
            }
            build = [str(BIN / "envrepo"), "build", "--registry", host]
            bases = run_timed([*build, "envrepo-minimal"], repo, env)
            base = f"{host}/envrepo-minimal:latest"
            forget_layers_on(client, base)
            cold = run_timed([*build, NAME], repo, env)
            image = client.images.get(f"{host}/{NAME}:latest")
            size = int(image.attrs["Size"])
            requirements = repo / "environments" / NAME / "requirements.txt"
            original = requirements.read_text()
            requirements.write_text(original.replace("matplotlib==3.11.2", "matplotlib==3.11.1"))
            relock = run_timed([str(BIN / "envrepo"), "lock", NAME], repo, env)
            rebuild = run_timed([*build, NAME], repo, env)
            phases = {
                path.stem: json.loads(path.read_text())["durations"]
                for path in (repo / ".envrepo/builds").glob(f"{NAME}-*.json")
            }
            push = run_timed([*build, "--push"], repo, env)
            noop = run_timed([*build, "--push"], repo, env)
            forget_layers_on(client, base)
            plain_cold, plain_size = plain_build(client, base, work / "plain", original)
            plain_more, _ = plain_build(
                client, base, work / "plain", original + "requests==2.32.3\n"
            )
        finally:
            for image in client.images.list():
                for tag in image.tags:
                    if tag.startswith((f"{host}/", "envrepo-bench/")):
                        client.images.remove(tag)
            subprocess.run(
                ["bash", str(PROJECT / "scripts/services.sh"), "stop-registry", str(registry_dir)],
                check=False,
            )
    print(
        f"{NAME} on envrepo-minimal (bases built first in {bases:.1f} s, from the Debian "
        f"archive when the root image was not there); {os.cpu_count()} cores"
    )
    rows = [
        ("(a) envrepo cold build", cold, f"{size / 1e6:.0f} MB"),
        ("(b) envrepo rebuild, one pin changed", rebuild, f"(lock: {relock:.1f} s)"),
        ("    push of the tree to the registry", push, "(apart: (d) pushes nothing)"),
        ("(c) envrepo no-op build --push, whole tree", noop, ""),
        ("(d) plain Dockerfile, pip install, cold", plain_cold, f"{plain_size / 1e6:.0f} MB"),
        ("(d) plain Dockerfile, one package added", plain_more, ""),
    ]
    for label, seconds, extra in rows:
        print(f"{label:<42}{seconds:>8.1f} s  {extra}")
    for name, durations in sorted(phases.items()):
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(durations.items()))
        print(f"    {name}: {parts} (check = smoke tests + package list in the image)")
    print(
        f"goals: (c) < 2 s: {'met' if noop < 2 else 'MISSED'}; "
        f"(a) <= half of (d): {'met' if cold <= plain_cold / 2 else 'MISSED'} "
        f"({cold / plain_cold:.0%}); (b) <= 30% of (a): "
        f"{'met' if rebuild <= 0.3 * cold else 'MISSED'} ({rebuild / cold:.0%}); "
        f"image no larger than (d)'s: {'met' if size <= plain_size else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
