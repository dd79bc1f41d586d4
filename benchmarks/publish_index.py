"""Benchmark: a published index of 1,000 environments x 20 versions, each version with 150
packages (apt and pip, as a real image has), sharded the envrepo way, side by side with the
same reads done Renovate-style on one monolithic document (the shape docker-stacks' wiki and
Helm's index.yaml have). Prints:

- regenerating the whole index from its stored versions, no registry calls (goal <= 3 s);
- publishing one new version into it (goal <= 0.5 s);
- `envrepo list --index DIR` (goal <= 0.3 s);
- `envrepo show NAME@V --index http://...` (goal <= 0.2 s, fetching <= 64 KB), the bytes it
  fetched, beside fetching and parsing the monolithic document for the same answer.

It asserts nothing (these machines are noisy).

Run: .venv/bin/python benchmarks/publish_index.py [--environments 1000] [--versions 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from common import BIN

from envrepo.index.store import IndexFolder, dumps
from envrepo.publish import publisher, regenerate
from envrepo.publish.index import Release, merge
from support import serve_folder

NOW = "2026-11-30T04:00:00+00:00"
APT, PIP = 110, 40


def packages(env: int, version: int) -> dict[str, dict[str, dict[str, str]]]:
    """150 packages; each version moves about one in ten of them."""

    def moved(k: int) -> int:
        """The last version, up to this one, that moved package k."""
        return version - (version - k - env) % 10

    return {
        "apt": {
            f"lib{k:03d}-tools": {
                "version": f"{k % 7}.{moved(k)}.{k % 3}-1+deb12u{moved(k)}",
                "purl": f"pkg:deb/debian/lib{k:03d}-tools@{k % 7}.{moved(k)}.{k % 3}-1",
            }
            for k in range(APT)
        },
        "conda": {},
        "pip": {
            f"package-{k:02d}": {
                "version": f"{1 + k % 4}.{moved(k)}.0",
                "purl": f"pkg:pypi/package-{k:02d}@{1 + k % 4}.{moved(k)}.0",
                "hashes": [f"sha256:{(env * 1000 + version * 50 + k):064x}"],
            }
            for k in range(PIP)
        },
    }


def release(env: int, version: int) -> Release:
    name = f"team-env-{env:04d}"
    return Release(
        name=name,
        hash=f"{env:032x}{version:032x}",
        digest=f"sha256:{env:032x}{version:032x}",
        repository=f"registry.example/ml/{name}",
        platform="linux/amd64",
        tags=(f"h-{env:06x}{version:06x}", f"sha-{version:012x}"),
        commit=f"{version:040x}",
        subject=f"{name}: pins of round {version}",
        committed=NOW,
        built=NOW,
        python="3.11",
        description=f"environment {env} of the benchmark",
        labels={"team": f"team-{env % 17}"},
        base={"text": "environment:team-base", "environment": "team-base"},
        parent_hash=None,
        packages=packages(env, version),
        folder=b"",
        folder_sha256="0" * 64,
    )


def generate(folder: Path, environments: int, versions: int) -> None:
    """The stored index, version round by version round (no pages: regenerating makes them)."""
    store = IndexFolder(folder)
    for version in range(1, versions + 1):
        outcome = merge(
            [release(env, version) for env in range(environments)],
            store.read,
            NOW,
            lambda *_: "{}",
        )
        store.write(outcome.files, outcome.documents, {})


def monolithic(folder: Path, target: Path) -> None:
    """Everything in one document: every environment, every version with its packages."""
    top = json.loads((folder / "index.json").read_text())
    everything = {}
    for name in top["environments"]:
        document = json.loads((folder / f"environments/{name}.json").read_text())
        for entry in document["releases"]:
            version = json.loads((folder / entry["version_document"]).read_text())
            entry["packages"] = version["packages"]
            entry["diff"] = version["diff"]
        everything[name] = document
    target.write_bytes(dumps({"environments": everything}))


def wall(command: list[str], repeat: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        out = done.stdout
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    envrepo = str(BIN / "envrepo")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as scratch:
        folder = Path(scratch) / "index"
        started = time.perf_counter()
        generate(folder, args.environments, args.versions)
        made = time.perf_counter() - started
        whole = Path(scratch) / "monolithic.json"
        monolithic(folder, whole)

        start = time.perf_counter()
        count = regenerate.regenerate(IndexFolder(folder))
        regenerated = time.perf_counter() - start

        one = []
        for round_ in range(args.repeat):
            new = replace(
                release(args.environments // 2, args.versions + 1 + round_),
                packages=packages(args.environments // 2, args.versions + 1 + round_),
            )
            start = time.perf_counter()
            publisher.apply(IndexFolder(folder), [new], (), NOW)
            one.append(time.perf_counter() - start)
        published = statistics.median(one)

        listed, _ = wall([envrepo, "list", "--index", str(folder)], args.repeat)
        name = f"team-env-{args.environments // 3:04d}"
        served: list[tuple[str, int]] = []
        with serve_folder(Path(scratch), served=served) as url:
            shown, out = wall(
                [envrepo, "show", f"{name}@{args.versions}", "--index", f"{url}/index"],
                args.repeat,
            )
            per_show = sum(size for _, size in served) // args.repeat
            monolithic_times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                with urllib.request.urlopen(f"{url}/{whole.name}", timeout=120) as response:
                    everything = json.loads(response.read())
                entry = next(
                    e
                    for e in everything["environments"][name]["releases"]
                    if e["number"] == args.versions
                )
                assert entry["packages"]
                monolithic_times.append(time.perf_counter() - start)
        sizes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        whole_size = whole.stat().st_size

    def verdict(value: float, goal: float) -> str:
        return f"goal <= {goal} s: {'met' if value <= goal else 'MISSED'}"

    print(
        f"{args.environments} environments x {args.versions} versions x {APT + PIP} packages "
        f"({count} versions, index {sizes / 1e6:.0f} MB, monolithic {whole_size / 1e6:.0f} MB);"
        f" made in {made:.1f} s; {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; medians of {args.repeat}"
    )
    print(
        f"regenerate the whole index (no registry)     {regenerated:8.3f} s  ({verdict(regenerated, 3.0)})"
    )
    print(
        f"publish one new version                      {published:8.3f} s  ({verdict(published, 0.5)})"
    )
    print(f"envrepo list --index DIR                     {listed:8.3f} s  ({verdict(listed, 0.3)})")
    print(
        f"envrepo show NAME@V --index http://          {shown:8.3f} s  ({verdict(shown, 0.2)}), "
        f"{per_show / 1000:.1f} KB fetched (goal <= 64 KB)"
    )
    print(
        f"monolithic document, Renovate-style read     {statistics.median(monolithic_times):8.3f} s"
        f"  ({whole_size / 1e6:.1f} MB fetched and parsed for the same answer)"
    )
    print(f"show's output:\n{out}")


if __name__ == "__main__":
    main()
