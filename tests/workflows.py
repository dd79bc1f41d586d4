"""GitHub Actions workflows run on this machine the way a runner runs them: a caller's job
that `uses:` a reusable workflow (from the checkout, or `owner/name/...@ref` from a git
repository standing in for GitHub) gets its inputs, secrets and workflow-level `env:`; each
job's `run:` steps run in bash in the runner's checkout, with `$GITHUB_PATH`,
`$GITHUB_OUTPUT`, `$GITHUB_STEP_SUMMARY` and `$RUNNER_TEMP` as a runner has them. `uses:`
steps are the few actions these workflows use, done by the test that calls them (checkout is
the runner's clone; artifacts are folders). Root here, so `sudo` is dropped."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(inputs|secrets|vars|matrix)\.([A-Za-z0-9_-]+)\s*\}\}")
# The actions the workflows may use; what each does is the calling test's.
ACTIONS = {
    "actions/checkout",
    "actions/setup-python",
    "actions/upload-artifact",
    "actions/download-artifact",
}


def expand(text: str, contexts: Mapping[str, Mapping[str, str]]) -> str:
    """`${{ context.name }}` replaced; anything else in `${{ }}` is a test's mistake."""
    found = EXPRESSION.sub(lambda m: contexts.get(m.group(1), {}).get(m.group(2), ""), text)
    assert "${{" not in found, f"an expression these tests do not evaluate: {text}"
    return found


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


@dataclass(frozen=True)
class Called:
    """A reusable workflow as a caller's job calls it: its jobs, and its `env:` evaluated."""

    jobs: dict[str, Any]
    env: dict[str, str]


def call(
    caller: dict[str, Any],
    job: str,
    checkout: Path,
    sources: Mapping[str, Path] | None = None,
    variables: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Called:
    """The reusable workflow that `caller`'s `job` uses. `./...` is read from `checkout`;
    `owner/name/path@ref` from the git repository `sources[owner/name]` at `ref`, as GitHub
    reads it."""
    entry = caller["jobs"][job]
    uses: str = entry["uses"]
    if uses.startswith("./"):
        called = load(checkout / uses)
    else:
        target, _, ref = uses.partition("@")
        owner, name, path = target.split("/", 2)
        source = (sources or {})[f"{owner}/{name}"]
        shown = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=source, capture_output=True, text=True
        )
        assert shown.returncode == 0, f"{uses}: {shown.stderr}"
        called = yaml.safe_load(shown.stdout)
    given = {"vars": dict(variables or {}), "secrets": dict(secrets or {})}
    declared = called[True]["workflow_call"]  # YAML reads the key `on` as True
    inputs = {k: str(v.get("default", "")) for k, v in declared.get("inputs", {}).items()}
    for key, value in (entry.get("with") or {}).items():
        assert key in inputs, f"{uses} has no input {key}"
        inputs[key] = expand(str(value), given)
    for key, spec in declared.get("inputs", {}).items():
        assert not spec.get("required") or inputs[key], f"{uses}: input {key} is required"
    passed = {k: expand(str(v), given) for k, v in (entry.get("secrets") or {}).items()}
    env = {
        k: expand(str(v), {"inputs": inputs, "secrets": passed})
        for k, v in (called.get("env") or {}).items()
    }
    return Called(called["jobs"], env)


@dataclass
class Runner:
    """One runner: its own checkout, home, caches and temporary folder."""

    checkout: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "temp").mkdir(exist_ok=True)
        self.path = self.home / "path"
        self.path.touch()

    @property
    def output(self) -> Path:
        return self.home / "output"

    @property
    def summary(self) -> Path:
        return self.home / "summary.md"

    def outputs(self) -> dict[str, str]:
        lines = self.output.read_text().splitlines() if self.output.is_file() else []
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def run(self, called: Called, job: str, matrix: Mapping[str, str] | None = None) -> None:
        """The `run:` steps of `called`'s `job`, in order; a failing step fails the test."""
        for step in called.jobs[job]["steps"]:
            if "run" not in step:
                assert step["uses"].split("@")[0] in ACTIONS, step
                continue
            contexts = {"matrix": dict(matrix or {})}
            command = re.sub(r"\bsudo (-E )?", "", expand(step["run"], contexts))
            added = [p for p in self.path.read_text().splitlines() if p]
            env = {
                **os.environ,
                **self.env,
                **called.env,
                **{k: expand(str(v), contexts) for k, v in (step.get("env") or {}).items()},
                "PATH": os.pathsep.join([*reversed(added), os.environ["PATH"]]),
                "RUNNER_TEMP": str(self.home / "temp"),
                "GITHUB_PATH": str(self.path),
                "GITHUB_OUTPUT": str(self.output),
                "GITHUB_STEP_SUMMARY": str(self.summary),
                "GITHUB_WORKSPACE": str(self.checkout),
            }
            done = subprocess.run(
                ["bash", "-eo", "pipefail", "-c", command],
                cwd=self.checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
                check=False,
            )
            assert done.returncode == 0, (
                f"{job}: {command}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
