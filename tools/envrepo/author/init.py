"""`envrepo init`: the files that start a repository that uses envrepo. A platform repository
publishes environments (envrepo.yaml with a registry and an index, environments/, the validate
and lock hooks); a consumer repository pins them (envrepo.yaml naming the index it reads, the
pin-check hook). Files that exist are left as they are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envrepo.repo.files import write_text

Kind = Literal["platform", "consumer"]
IGNORED = ".envrepo/"
# Where envrepo's hooks come from, unless the caller names its own copy.
HOOKS_REPO = "https://github.com/envrepo/envrepo"


@dataclass(frozen=True)
class Request:
    kind: Kind
    registry: str | None
    index: str | None
    hooks_repo: str
    hooks_rev: str


def _config(request: Request) -> str:
    schema = "# envrepo's repository config (its JSON Schema ships in the envrepo package).\n"
    if request.kind == "platform":
        return (
            schema + "# The environments of this repository: each is a folder of environments/.\n"
            f"registry: {request.registry or 'registry.example/team'}  # where images are pushed\n"
            "# reserved_prefix: team-   # names only curated environments may take\n"
            "environments: environments\n"
            "index:\n"
            "  path: index              # envrepo publish writes the index here by default\n"
            + (
                f"  url: {request.index}\n"
                if request.index
                else "  # url: https://...   # where readers find it\n"
            )
        )
    return (
        schema
        + "# This repository pins published environments in envrepo.lock (envrepo pin NAME).\n"
        + "index:\n"
        + (
            f"  url: {request.index}\n"
            if request.index
            else "  # url: https://...   # the index envrepo pin reads\n"
        )
    )


def _hooks(request: Request) -> str:
    ids = (
        ["envrepo-validate", "envrepo-lock"]
        if request.kind == "platform"
        else ["envrepo-pin-check"]
    )
    lines = [
        "# envrepo's hooks; `pre-commit install` runs them on each commit.",
        "repos:",
        f"  - repo: {request.hooks_repo}",
        f"    rev: {request.hooks_rev}",
        "    hooks:",
        *(f"      - id: {hook}" for hook in ids),
    ]
    return "\n".join(lines) + "\n"


def init(root: Path, request: Request) -> tuple[list[str], list[str]]:
    """Write what is missing; (written, left as they were)."""
    written: list[str] = []
    kept: list[str] = []
    files = {"envrepo.yaml": _config(request), ".pre-commit-config.yaml": _hooks(request)}
    for name, text in files.items():
        if (root / name).exists():
            kept.append(name)
        else:
            write_text(root / name, text)
            written.append(name)
    ignore = root / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    if IGNORED not in lines and f"/{IGNORED}" not in lines:
        write_text(ignore, "\n".join([*lines, IGNORED]) + "\n")
        written.append(".gitignore")
    if request.kind == "platform" and not (root / "environments").exists():
        (root / "environments").mkdir()
        written.append("environments/")
    return written, kept
