"""The pin check as GitHub shows it: one annotation per pin that needs attention, and a
table in the job summary ($GITHUB_STEP_SUMMARY, when set)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

LEVEL = {
    "current": None,
    "newer": "notice",
    "changed": "error",
    "gone": "error",
    "deprecated": "error",
}


def main() -> None:
    results = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8") or "[]")
    for result in results:
        level = LEVEL[result["outcome"]]
        if level:
            print(
                f"::{level} file=envrepo.lock,title=envrepo pin {result['name']}::{result['message']}"
            )
    rows = [
        f"| {r['name']} | {r['version']} | {r['outcome']} | {r['message'].replace('|', '/')} |"
        for r in results
    ]
    summary = "\n".join(
        [
            "### envrepo pins",
            "",
            "| environment | pinned | outcome | details |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(summary)
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(summary + "\n")


if __name__ == "__main__":
    main()
