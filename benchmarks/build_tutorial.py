"""Benchmark: building and pushing the tutorial environment, side by side in one run with the
Dockerfile a careful user writes today: the same base, uv copied in,
`UV_COMPILE_BYTECODE=1 uv pip install --require-hashes -r requirements.lock` (the host's CA
given), then `docker push`. Prints times and image sizes; asserts nothing (these machines are
noisy).

Every round starts cold (empty envrepo and uv caches, nothing of the tutorial in the daemon,
the parent image in it) against a fresh registry that holds only the parent, pushed there
first:
  (a) envrepo cold build + push of envrepo-tutorial
  (e) the uv Dockerfile's build + `docker push`, cold
  (b) envrepo rebuild + push after one pin change (its re-lock timed apart), against (e) after
      the same pin change
  (f) a new environment, the tutorial's packages plus one more, built and pushed with empty
      envrepo and uv caches after the tutorial was pushed (its lock made first, timed apart)
  (c) once, at the end: a no-op build of the whole curated tree with --push
Goals (issue 14), on the medians: (a) at most 50 % of (e); (b) at most 15 % of (e)'s rebuild;
(f) at most 50 % of (a); (c) under 1 s.

Needs Docker (run scripts/services.sh first; the README's commands do).
Run: .venv/bin/python benchmarks/build_tutorial.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from common import BIN, curated_copy, run_timed

from registries import start_registry

NAME = "envrepo-tutorial"
PARENT = "envrepo-minimal"
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))
PIN, NEW_PIN = "matplotlib==3.11.2", "matplotlib==3.11.1"
PLUS, ONE_MORE = f"{NAME}-plus", "requests==2.32.3"


def add_plus(repo: Path) -> None:
    """(f)'s environment: the tutorial's folder under a new name, with one package more."""
    folder = repo / "environments" / PLUS
    shutil.copytree(repo / "environments" / NAME, folder)
    (folder / "requirements.lock").unlink()
    spec = folder / "environment.yaml"
    spec.write_text(spec.read_text().replace(f"name: {NAME}", f"name: {PLUS}"))
    requirements = folder / "requirements.txt"
    requirements.write_text(requirements.read_text() + ONE_MORE + "\n")


def forget_layers_on(client: docker.DockerClient, base: str) -> None:
    """Make a build cold in the daemon too: no image built on `base` is kept, whatever its
    tags, so that no layer of the tutorial (or of the uv build) is there already."""
    below = client.images.get(base).attrs["RootFS"]["Layers"]
    # Newest first, so children before their parents: the daemon refuses to remove an image
    # `docker build` made another on (an environment under its inference images), and a step
    # that adds no layer makes a child with as many layers as its parent.
    images = sorted(client.images.list(all=True), key=lambda i: i.attrs["Created"], reverse=True)
    for image in images:
        layers = image.attrs["RootFS"]["Layers"]
        if len(layers) > len(below) and layers[: len(below)] == below:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(image.id, force=True)


def uv_build_and_push(
    client: docker.DockerClient, base: str, context: Path, lock: str, target: str
) -> tuple[float, float, int]:
    """(e): build time, `docker push` time, image size."""
    from uv import find_uv_bin

    context.mkdir(exist_ok=True)
    (context / "requirements.lock").write_text(lock)
    shutil.copy(CA_BUNDLE, context / "ca.crt")
    shutil.copy(find_uv_bin(), context / "uv")
    (context / "Dockerfile").write_text(
        f"FROM {base}\nCOPY uv /usr/local/bin/uv\nCOPY ca.crt /etc/ssl/certs/host-ca.crt\n"
        "COPY requirements.lock /tmp/\n"
        "RUN SSL_CERT_FILE=/etc/ssl/certs/host-ca.crt UV_COMPILE_BYTECODE=1 UV_NO_CACHE=1 "
        "uv pip install --require-hashes -r /tmp/requirements.lock\n"
    )
    os.sync()
    start = time.perf_counter()
    image, _ = client.images.build(path=str(context), tag=f"{target}:latest", rm=True)
    built = time.perf_counter() - start
    start = time.perf_counter()
    for chunk in client.images.push(target, tag="latest", stream=True, decode=True):
        if "error" in chunk:
            raise SystemExit(f"docker push of {target} failed: {chunk['error']}")
    return built, time.perf_counter() - start, int(image.attrs["Size"])


@dataclass
class Round:
    cold: float
    size: int
    relock: float
    rebuild: float
    phases: dict[str, dict[str, float]]
    uv_cold: tuple[float, float, int]
    uv_rebuild: tuple[float, float, int]
    plus: float
    plus_lock: float


def built_image(client: docker.DockerClient, host: str, name: str) -> str:
    """The ID of the image a build of `name` left tagged (its hash tag; `latest` is publish's)."""
    [image] = client.images.list(name=f"{host}/{name}")
    return str(image.id)


def one_round(
    client: docker.DockerClient, repo: Path, work: Path, number: int, hosts: list[str]
) -> Round:
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(work / f"uv-cache-{number}"),
        "XDG_CACHE_HOME": str(work / f"cache-{number}"),
        "CI": "true",
    }
    running = start_registry(work / f"registry-{number}")
    host = running.host
    hosts.append(host)
    build = [str(BIN / "envrepo"), "build", "--push", "--registry", host]
    folder = repo / "environments" / NAME
    kept = {path: path.read_bytes() for path in folder.glob("requirements.*")}
    try:
        run_timed([*build, PARENT], repo, env)
        base = built_image(client, host, PARENT)
        for path in (repo / ".envrepo/builds").glob(f"{NAME}-*.json"):
            path.unlink()
        forget_layers_on(client, base)
        cold = run_timed([*build, NAME], repo, env)
        size = int(client.images.get(built_image(client, host, NAME)).attrs["Size"])
        empty = {
            **env,
            "UV_CACHE_DIR": str(work / f"uv-cache-plus-{number}"),
            "XDG_CACHE_HOME": str(work / f"cache-plus-{number}"),
        }
        plus_lock = run_timed([str(BIN / "envrepo"), "lock", PLUS], repo, env)
        plus = run_timed([*build, PLUS], repo, empty)
        requirements = folder / "requirements.txt"
        requirements.write_text(requirements.read_text().replace(PIN, NEW_PIN))
        relock = run_timed([str(BIN / "envrepo"), "lock", NAME], repo, env)
        changed_lock = (folder / "requirements.lock").read_text()
        rebuild = run_timed([*build, NAME], repo, env)
        phases = {
            path.stem: json.loads(path.read_text())["durations"]
            for path in (repo / ".envrepo/builds").glob(f"{NAME}-*.json")
        }
        for path, data in kept.items():
            path.write_bytes(data)
        forget_layers_on(client, base)
        original_lock = kept[folder / "requirements.lock"].decode()
        target = f"{host}/bench-uv"
        uv_cold = uv_build_and_push(client, base, work / "uv", original_lock, target)
        uv_rebuild = uv_build_and_push(client, base, work / "uv", changed_lock, target)
        return Round(cold, size, relock, rebuild, phases, uv_cold, uv_rebuild, plus, plus_lock)
    finally:
        for path, data in kept.items():
            path.write_bytes(data)
        (repo / "environments" / PLUS / "requirements.lock").unlink(missing_ok=True)
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds, each cold; medians")
    runs = parser.parse_args().runs
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="envrepo-bench-") as scratch:
        work = Path(scratch)
        repo = curated_copy(work / "repo")
        add_plus(repo)
        rounds = []
        hosts: list[str] = []
        try:
            for number in range(runs):
                rounds.append(one_round(client, repo, work, number, hosts))
            # (c): the whole curated tree, all of it in the registry already.
            shutil.rmtree(repo / "environments" / PLUS)
            running = start_registry(work / "registry-noop")
            hosts.append(running.host)
            try:
                env = {**os.environ, "CI": "true", "XDG_CACHE_HOME": str(work / "cache-0")}
                build = [str(BIN / "envrepo"), "build", "--push", "--registry", running.host]
                run_timed(build, repo, env)
                noop = run_timed(build, repo, env)
            finally:
                running.stop()
        finally:
            for image in client.images.list():
                for tag in image.tags:
                    if tag.split("/", 1)[0] in hosts:
                        with contextlib.suppress(docker.errors.APIError):
                            client.images.remove(tag)
            client.images.prune(filters={"dangling": True})
    report(rounds, noop)


def report(rounds: list[Round], noop: float) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    def row(label: str, values: list[float], extra: str = "") -> None:
        each = "  ".join(f"{v:5.1f}" for v in values)
        print(f"{label:<50}{median(values):>7.1f} s   ({each})  {extra}")

    print(f"{NAME} on {PARENT}, {len(rounds)} rounds, median (each round); {os.cpu_count()} cores")
    cold = median([r.cold for r in rounds])
    rebuild = median([r.rebuild for r in rounds])
    uv_cold = median([r.uv_cold[0] + r.uv_cold[1] for r in rounds])
    uv_rebuild = median([r.uv_rebuild[0] + r.uv_rebuild[1] for r in rounds])
    plus = median([r.plus for r in rounds])
    row("(a) envrepo cold build + push", [r.cold for r in rounds], f"{rounds[0].size / 1e6:.0f} MB")
    row(
        "(e) uv Dockerfile cold build + docker push",
        [r.uv_cold[0] + r.uv_cold[1] for r in rounds],
        f"{rounds[0].uv_cold[2] / 1e6:.0f} MB",
    )
    row("    of which its build", [r.uv_cold[0] for r in rounds])
    row("    of which its docker push", [r.uv_cold[1] for r in rounds])
    row("(b) envrepo rebuild + push, one pin changed", [r.rebuild for r in rounds])
    row("    its re-lock, timed apart", [r.relock for r in rounds])
    row(
        "(e) uv Dockerfile rebuild + docker push, same pin",
        [r.uv_rebuild[0] + r.uv_rebuild[1] for r in rounds],
    )
    row("(f) new environment, one package more, empty caches", [r.plus for r in rounds])
    row("    its lock, timed apart", [r.plus_lock for r in rounds])
    row("(c) envrepo no-op build --push, whole tree", [noop])
    for number, one in enumerate(rounds, start=1):
        for name, durations in sorted(one.phases.items()):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(durations.items()))
            print(f"    round {number} {name}: {parts} s")
    print(
        "    (stage = install + compile + layers; build = docker load; check = smoke tests; "
        "upload = blobs, beside the check; push = waiting for them + manifest and tags)"
    )
    print(
        f"goals, on the medians: (a) <= 50% of (e): {'met' if cold <= uv_cold / 2 else 'MISSED'}"
        f" ({cold / uv_cold:.0%}); (b) <= 15% of (e)'s rebuild: "
        f"{'met' if rebuild <= 0.15 * uv_rebuild else 'MISSED'} ({rebuild / uv_rebuild:.0%}); "
        f"(f) <= 50% of (a): {'met' if plus <= cold / 2 else 'MISSED'} ({plus / cold:.0%}); "
        f"(c) < 1 s: {'met' if noop < 1 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
