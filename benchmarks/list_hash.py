"""Benchmark: `envrepo list` over a generated repository of 2,000 environments, side by side
with `envrepo hash` over the same tree (list hashes every environment too, in one pass, and
reads its files once more for the table). Prints wall times; it asserts nothing (these
machines are noisy).

Run: .venv/bin/python benchmarks/list_hash.py [--environments 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from validate_hash import BIN, generate, timed

GOAL_SECONDS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envrepo-bench-") as scratch:
        root = Path(scratch)
        generate(root, args.environments)
        rows = {
            "envrepo list": timed([str(BIN / "envrepo"), "list"], root, args.repeat),
            "envrepo hash": timed([str(BIN / "envrepo"), "hash"], root, args.repeat),
            "envrepo list --json": timed(
                [str(BIN / "envrepo"), "list", "--json"], root, args.repeat
            ),
        }
    print(
        f"{args.environments} environments, median and best of {args.repeat} runs, "
        f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}"
    )
    print(f"{'command':<28}{'median s':>10}{'best s':>10}")
    for name, (median, best) in rows.items():
        print(f"{name:<28}{median:>10.3f}{best:>10.3f}")
    listed = rows["envrepo list"][0]
    print(
        f"list: {listed:.3f} s (goal <= {GOAL_SECONDS} s: "
        f"{'met' if listed <= GOAL_SECONDS else 'MISSED'}); "
        f"{listed / rows['envrepo hash'][0]:.0%} of hash"
    )


if __name__ == "__main__":
    main()
