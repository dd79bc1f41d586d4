"""Benchmark: building the tutorial environment, side by side in one run with a plain
Dockerfile that runs `pip install -r requirements.txt` from the package index on the same
base. Prints times and image sizes; asserts nothing (these machines are noisy).

  (a) cold build of envrepo-tutorial: empty download cache, its base already built
  (b) rebuild after changing one pin (the lock is made first and timed apart)
      (a) and (b) build into the local Docker Engine; the push is timed apart, as (d) has none
  (c) no-op build of the whole curated tree, --push: nothing to build or push
  (d) plain Dockerfile, pip install inside the build, cold and after adding one package

Needs Docker and a registry: run scripts/services.sh first (the README's commands do).
Each of (a), (b) and (d) is measured in --runs rounds (3 by default), each from a cold start;
the goals are judged on the medians.

Run: .venv/bin/python benchmarks/build_tutorial.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Run:
    """One round of the measures that start cold."""

    cold: float
    cold_check: float  # the smoke tests inside the image, part of (a); (d) runs none
    size: int
    relock: float
    rebuild: float
    phases: dict[str, dict[str, float]]
    plain_cold: float
    plain_size: int
    plain_more: float


def one_round(
    client: docker.DockerClient, repo: Path, host: str, work: Path, env: dict[str, str]
) -> Run:
    """(a), (b) and (d), each from a cold start: empty caches, no layer of theirs in Docker."""
    build = [str(BIN / "envrepo"), "build", "--registry", host]
    base = f"{host}/envrepo-minimal:latest"
    folder = repo / "environments" / NAME
    kept = {path: path.read_bytes() for path in folder.glob("requirements.*")}
    for path in (repo / ".envrepo/builds").glob(f"{NAME}-*.json"):
        path.unlink()
    forget_layers_on(client, base)
    cold = run_timed([*build, NAME], repo, env)
    [record] = (repo / ".envrepo/builds").glob(f"{NAME}-*.json")
    cold_check = float(json.loads(record.read_text())["durations"]["check"])
    size = int(client.images.get(f"{host}/{NAME}:latest").attrs["Size"])
    requirements = folder / "requirements.txt"
    original = requirements.read_text()
    requirements.write_text(original.replace("matplotlib==3.11.2", "matplotlib==3.11.1"))
    relock = run_timed([str(BIN / "envrepo"), "lock", NAME], repo, env)
    rebuild = run_timed([*build, NAME], repo, env)
    phases = {
        path.stem: json.loads(path.read_text())["durations"]
        for path in (repo / ".envrepo/builds").glob(f"{NAME}-*.json")
    }
    for path, data in kept.items():
        path.write_bytes(data)
    forget_layers_on(client, base)
    plain_cold, plain_size = plain_build(client, base, work / "plain", original)
    plain_more, _ = plain_build(client, base, work / "plain", original + "requests==2.32.3\n")
    return Run(cold, cold_check, size, relock, rebuild, phases, plain_cold, plain_size, plain_more)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds of (a), (b), (d); medians")
    runs = parser.parse_args().runs
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
            build = [str(BIN / "envrepo"), "build", "--registry", host]
            rounds = []
            for number in range(runs):
                # Cold: an empty download cache and an empty layer cache, every round.
                env = {
                    **os.environ,
                    "UV_CACHE_DIR": str(work / f"uv-cache-{number}"),
                    "XDG_CACHE_HOME": str(work / f"cache-{number}"),
                    "CI": "true",
                }
                bases = run_timed([*build, "envrepo-minimal"], repo, env)
                rounds.append(one_round(client, repo, host, work, env))
            push = run_timed([*build, "--push"], repo, env)
            noop = run_timed([*build, "--push"], repo, env)
        finally:
            # The plain build's first image lost its tag to the second: it goes by its base.
            with contextlib.suppress(docker.errors.ImageNotFound):
                forget_layers_on(client, f"{host}/envrepo-minimal:latest")
            for image in client.images.list():
                for tag in image.tags:
                    if tag.startswith((f"{host}/", "envrepo-bench/")):
                        client.images.remove(tag)
            subprocess.run(
                ["bash", str(PROJECT / "scripts/services.sh"), "stop-registry", str(registry_dir)],
                check=False,
            )
    report(rounds, bases, push, noop)


def report(rounds: list[Run], bases: float, push: float, noop: float) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    def row(label: str, values: list[float], extra: str = "") -> None:
        each = "  ".join(f"{v:5.1f}" for v in values)
        print(f"{label:<44}{median(values):>7.1f} s   ({each})  {extra}")

    print(
        f"{NAME} on envrepo-minimal, {len(rounds)} rounds, median (each round); "
        f"{os.cpu_count()} cores; bases took {bases:.1f} s"
    )
    cold = median([r.cold for r in rounds])
    rebuild = median([r.rebuild for r in rounds])
    plain = median([r.plain_cold for r in rounds])
    size, plain_size = rounds[0].size, rounds[0].plain_size
    row("(a) envrepo cold build", [r.cold for r in rounds], f"{size / 1e6:.0f} MB")
    row("    of which its smoke tests ((d) runs none)", [r.cold_check for r in rounds])
    row("(b) envrepo rebuild, one pin changed", [r.rebuild for r in rounds])
    row("    its re-lock, timed apart", [r.relock for r in rounds])
    row("    push of the tree to the registry", [push], "(apart: (d) pushes nothing)")
    row("(c) envrepo no-op build --push, whole tree", [noop])
    row(
        "(d) plain Dockerfile, pip install, cold",
        [r.plain_cold for r in rounds],
        f"{plain_size / 1e6:.0f} MB",
    )
    row("(d) plain Dockerfile, one package added", [r.plain_more for r in rounds])
    for number, run in enumerate(rounds, start=1):
        for name, durations in sorted(run.phases.items()):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(durations.items()))
            print(f"    round {number} {name}: {parts} s")
    print("    (stage = install + compile + layers; build = docker load; check = smoke tests)")
    print(
        f"goals, on the medians: (c) < 2 s: {'met' if noop < 2 else 'MISSED'}; "
        f"(a) <= half of (d): {'met' if cold <= plain / 2 else 'MISSED'} ({cold / plain:.0%}); "
        f"(b) <= 30% of (a): {'met' if rebuild <= 0.3 * cold else 'MISSED'} "
        f"({rebuild / cold:.0%}); image no larger than (d)'s: "
        f"{'met' if size <= plain_size else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
