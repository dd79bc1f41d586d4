"""Benchmark: `envrepo lock` of the curated tutorial environment with its lock removed, cold
and warm, side by side in one run with `pip-compile --generate-hashes` (pip-tools) and a bare
`uv pip compile --generate-hashes` of the same input for the same target; and `envrepo lock`
with the lock current (nothing to resolve). Prints wall times; asserts nothing (these machines
are noisy).

Run: .venv/bin/python benchmarks/lock_tutorial.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from common import BIN, curated_copy, run_timed

from envrepo.lock.uv import binary as uv
from envrepo.repo.platforms import PLATFORMS

NAME = "envrepo-tutorial"
WARM_GOAL_VS_PIP_COMPILE = 10.0
WARM_GOAL_VS_UV = 1.3  # issue 27: one resolution per lock


def warm(
    command: Sequence[str], cwd: Path, env: dict[str, str], repeat: int, drop: Path | None
) -> float:
    """The median of `repeat` runs, `drop` (a lock) removed before each, outside the timing."""
    times = []
    for _ in range(repeat):
        if drop is not None:
            drop.unlink(missing_ok=True)
        times.append(run_timed(command, cwd, env))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envrepo-bench-") as scratch:
        work = Path(scratch)
        repo = curated_copy(work / "repo")
        folder = repo / "environments" / NAME
        caches = {name: work / f"cache-{name}" for name in ("envrepo", "uv", "pip")}
        base = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
        envs = {
            "envrepo": {**base, "UV_CACHE_DIR": str(caches["envrepo"])},
            "uv": {**base, "UV_CACHE_DIR": str(caches["uv"])},
            "pip": {**base, "PIP_CACHE_DIR": str(caches["pip"])},
        }
        commands = {
            "envrepo lock": [str(BIN / "envrepo"), "lock", NAME],
            "uv pip compile": [
                uv(),
                "pip",
                "compile",
                "requirements.txt",
                "--python-version",
                "3.11",
                "--python-platform",
                PLATFORMS["linux/amd64"].pip_tag,
                "--generate-hashes",
                "--quiet",
                "-o",
                str(work / "uv.lock"),
            ],
            "pip-compile": [
                str(BIN / "pip-compile"),
                "--generate-hashes",
                "--quiet",
                "--output-file",
                str(work / "pip-tools.lock"),
                "requirements.txt",
            ],
        }
        cache_of = {"envrepo lock": "envrepo", "uv pip compile": "uv", "pip-compile": "pip"}
        lock = folder / "requirements.lock"
        results = {}
        for label, command in commands.items():
            env = envs[cache_of[label]]
            drop = lock if label == "envrepo lock" else None
            if drop is not None:
                drop.unlink()
            cold = run_timed(command, folder, env)
            results[label] = (cold, warm(command, folder, env, args.repeat, drop))
        current = {
            "envrepo lock NAME": [str(BIN / "envrepo"), "lock", NAME],
            "envrepo lock --changed": [str(BIN / "envrepo"), "lock", "--changed"],
        }
        kept = {
            label: warm(command, folder, envs["envrepo"], args.repeat, None)
            for label, command in current.items()
        }
    print(
        f"lock of {NAME} (scikit-learn, pandas, matplotlib), cold = empty cache, "
        f"warm = median of {args.repeat}; {os.cpu_count()} cores"
    )
    print(f"{'tool':<24}{'cold s':>10}{'warm s':>10}")
    for label, (cold, warm_time) in results.items():
        shown = f"{label} (no lock)" if label == "envrepo lock" else label
        print(f"{shown:<24}{cold:>10.2f}{warm_time:>10.2f}")
    for label, seconds in kept.items():
        print(f"{label:<24}{'':>10}{seconds:>10.2f}  (the lock current: nothing resolved)")
    ours = results["envrepo lock"][1]
    vs_pip = results["pip-compile"][1] / ours
    vs_uv = ours / results["uv pip compile"][1]
    print(
        f"envrepo warm resolution (lock removed) is {vs_pip:.1f}x faster than pip-compile warm "
        f"(goal >= {WARM_GOAL_VS_PIP_COMPILE:.0f}x: "
        f"{'met' if vs_pip >= WARM_GOAL_VS_PIP_COMPILE else 'MISSED'}), and "
        f"{vs_uv:.2f}x the bare uv time (goal <= {WARM_GOAL_VS_UV}x: "
        f"{'met' if vs_uv <= WARM_GOAL_VS_UV else 'MISSED'}); bare uv itself is "
        f"{results['pip-compile'][1] / results['uv pip compile'][1]:.1f}x faster than "
        "pip-compile warm here"
    )


if __name__ == "__main__":
    main()
