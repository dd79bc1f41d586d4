"""Benchmark: `envrepo validate` and `envrepo hash` over a generated repository of 500
environments, side by side with check-jsonschema validating the same spec files against the
same schema. Prints wall times; it asserts nothing (these machines are noisy).

Run: .venv/bin/python benchmarks/validate_hash.py [--environments 500] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN

from envrepo.inputs import sources
from envrepo.lock import files as lock
from envrepo.repo import graph
from envrepo.repo.config import open_repository
from envrepo.repo.schemas import ENVIRONMENT
from envrepo.repo.spec import load_catalog

SCHEMA = Path(__file__).resolve().parent.parent / "tools/envrepo/repo/schemas" / ENVIRONMENT
GOAL_SECONDS = 0.7
GOAL_RATIO = 0.70


def spec_text(index: int) -> str:
    if index % 50 == 0:
        base = "  image: python:3.11-slim"
    else:
        base = f"  environment: env-{index - 1 if index % 5 else index - index % 50:04d}"
    return (
        f"# yaml-language-server: $schema={SCHEMA}\n"
        f"name: env-{index:04d}\n"
        f"description: generated environment number {index}\n"
        f"base:\n{base}\n"
        'python: "3.11"\n'
        "pip: requirements.txt\n"
        "apt: [libgomp1, curl]\n"
        f'variables: {{OMP_NUM_THREADS: "1", ENV_INDEX: "{index}"}}\n'
        "labels: {team: ml, tier: generated}\n"
        "platforms: [linux/amd64]\n"
    )


def generate(root: Path, count: int) -> list[Path]:
    (root / "envrepo.yaml").write_text("registry: localhost:5000\n")
    specs = []
    for index in range(count):
        folder = root / "environments" / f"env-{index:04d}"
        folder.mkdir(parents=True)
        (folder / "environment.yaml").write_text(spec_text(index))
        (folder / "requirements.txt").write_text(
            f"numpy==1.26.4\nrequests==2.31.{index % 7}\n# generated\n"
        )
        specs.append(folder / "environment.yaml")
    repo, _ = open_repository(root, explicit=True)
    catalog = load_catalog(repo)
    for name in graph.ordered(catalog.specs):
        spec, bases = catalog.specs[name], graph.ancestors(name, catalog.specs)
        for item in sources.lock_inputs(spec):
            body = "numpy==1.26.4 \\\n    --hash=sha256:" + "0" * 64 + "\n"
            digest = lock.input_digest(spec, item, bases)
            item.lock.write_text(lock.lock_text(spec, item, digest, body, "uv (generated)"))
    return specs


def timed(command: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(
                f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        specs = generate(root, args.environments)
        rows = {
            "envrepo validate": timed([str(BIN / "envrepo"), "validate"], root, args.repeat),
            "envrepo hash": timed([str(BIN / "envrepo"), "hash"], root, args.repeat),
            "check-jsonschema": timed(
                [str(BIN / "check-jsonschema"), "--schemafile", str(SCHEMA), *map(str, specs)],
                root,
                args.repeat,
            ),
        }
    validate, hash_ = rows["envrepo validate"], rows["envrepo hash"]
    both = (validate[0] + hash_[0], validate[1] + hash_[1])
    reference = rows["check-jsonschema"]
    print(
        f"{args.environments} environments, median and best of {args.repeat} runs, "
        f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}"
    )
    print(f"{'command':<28}{'median s':>10}{'best s':>10}")
    for name, (median, best) in {**rows, "envrepo validate + hash": both}.items():
        print(f"{name:<28}{median:>10.3f}{best:>10.3f}")
    ratio = both[0] / reference[0]
    print(
        f"validate + hash: {both[0]:.3f} s (goal <= {GOAL_SECONDS} s: "
        f"{'met' if both[0] <= GOAL_SECONDS else 'MISSED'}); "
        f"{ratio:.0%} of check-jsonschema (goal <= {GOAL_RATIO:.0%}: "
        f"{'met' if ratio <= GOAL_RATIO else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
