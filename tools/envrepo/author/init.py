"""`envrepo init`: the files that start a repository that uses envrepo. A platform repository
publishes environments: envrepo.yaml with a registry, an index and a default base, a root
environment of its own from the Debian archive, the validate and lock hooks, and CI workflows
that call envrepo's reusable ones. A consumer repository pins them: envrepo.yaml naming the
index it reads, and the pin-check hook. Hooks and workflows are pinned at the installed
envrepo's release. Files that exist are left as they are."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from envrepo.author.scaffold import Request as Scaffold
from envrepo.author.scaffold import bootstrap_base, scaffold_environment
from envrepo.errors import EnvrepoError
from envrepo.repo import schema_copy, schemas
from envrepo.repo.config import CONFIG_FILE, open_repository
from envrepo.repo.files import write_text
from envrepo.repo.spec import load_catalog

Kind = Literal["platform", "consumer"]
IGNORED = ".envrepo/"
# Where envrepo's hooks and reusable workflows come from, unless the caller names its own copy.
HOOKS_REPO = "https://github.com/envrepo/envrepo"
WORKFLOWS = ("envrepo-pull-request.yml", "envrepo-main.yml")


@dataclass(frozen=True)
class Pinned:
    """Which envrepo an adopter's hooks and workflows use: the hooks' revision, and what its
    CI installs (a release by version, else the same revision from git)."""

    rev: str
    version: str | None


def pinned(installed: str, given_rev: str | None) -> Pinned:
    """The installed envrepo as a revision of its repository: a release is its tag
    `v<version>`; `given_rev` wins (and is what CI installs from git for a build between
    releases, whose short commit neither GitHub's `uses:` nor pip can pin)."""
    try:
        version = Version(installed)
    except InvalidVersion:
        version = None
    release = version is not None and not (version.is_devrelease or version.local)
    if given_rev is not None:
        return Pinned(given_rev, str(version) if release else None)
    if release:
        return Pinned(f"v{version}", str(version))
    raise EnvrepoError(
        f"envrepo {installed} is not a release, so no tag names it; pass --hooks-rev with a "
        "tag or full commit of the hooks repository, or install a release of envrepo"
    )


@dataclass(frozen=True)
class Request:
    kind: Kind
    registry: str | None
    index: str | None
    hooks_repo: str
    pin: Pinned
    index_branch: str = "gh-pages"
    root: str | None = None
    suite: str = "bookworm"


def _config(request: Request) -> str:
    header = (
        f"{schema_copy_comment(schemas.CONFIG)}\n"
        "# envrepo's repository config (the schema above is kept current by envrepo validate).\n"
    )
    if request.kind == "platform":
        assert request.root is not None
        _, python = bootstrap_base(request.suite)
        return (
            header + "# The environments of this repository: each is a folder of environments/.\n"
            f"registry: {request.registry or 'registry.example/team'}  # where images are pushed\n"
            "# reserved_prefix: team-   # names only curated environments may take\n"
            "environments: environments\n"
            "defaults:\n"
            f'  python: "{python}"\n'
            "  base:\n"
            f"    environment: {request.root}  # envrepo scaffold NAME builds on it\n"
            "index:\n"
            "  path: index              # envrepo publish writes the index here by default\n"
            + (
                f"  url: {request.index}\n"
                if request.index
                else "  # url: https://...   # where readers find it\n"
            )
        )
    return (
        header
        + "# This repository pins published environments in envrepo.lock (envrepo pin NAME),\n"
        + "# and may build environments of its own on them (no registry needed to run them).\n"
        + "index:\n"
        + (
            f"  url: {request.index}\n"
            if request.index
            else "  # url: https://...   # the index envrepo pin reads\n"
        )
    )


def schema_copy_comment(name: str) -> str:
    return f"# yaml-language-server: $schema={schemas.COPY_FOLDER}/{name}"


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
        f"    rev: {request.pin.rev}",
        "    hooks:",
        *(f"      - id: {hook}" for hook in ids),
    ]
    return "\n".join(lines) + "\n"


def workflows_repo(hooks_repo: str) -> str:
    """The `owner/name` that `uses:` names for the hooks' repository on GitHub."""
    for prefix in ("https://github.com/", "git@github.com:"):
        if hooks_repo.startswith(prefix):
            return hooks_repo.removeprefix(prefix).removesuffix(".git").strip("/")
    return HOOKS_REPO.removeprefix("https://github.com/")


def _workflow(name: str, request: Request) -> str:
    text = resources.files("envrepo.author").joinpath("workflows", name).read_text("utf-8")
    install = (
        f'envrepo-version: "{request.pin.version}"'
        if request.pin.version
        else f'envrepo-source: "git+{request.hooks_repo}@{request.pin.rev}"'
    )
    return (
        text.replace("@WORKFLOWS@", workflows_repo(request.hooks_repo))
        .replace("@REV@", request.pin.rev)
        .replace('envrepo-version: "@VERSION@"', install)
        .replace("@BRANCH@", request.index_branch)
    )


def init(root: Path, request: Request) -> tuple[list[str], list[str]]:
    """Write what is missing; (written, left as they were)."""
    written: list[str] = []
    kept: list[str] = []
    files = {CONFIG_FILE: _config(request), ".pre-commit-config.yaml": _hooks(request)}
    if request.kind == "platform":
        files |= {f".github/workflows/{name}": _workflow(name, request) for name in WORKFLOWS}
    for name, text in files.items():
        if (root / name).exists():
            kept.append(name)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            write_text(root / name, text)
            written.append(name)
    written += [str(p.relative_to(root)) for p in schema_copy.write(root)]
    ignore = root / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    if IGNORED not in lines and f"/{IGNORED}" not in lines:
        write_text(ignore, "\n".join([*lines, IGNORED]) + "\n")
        written.append(".gitignore")
    if request.kind == "platform":
        written += _root_environment(root, request)
    return written, kept


def _root_environment(root: Path, request: Request) -> list[str]:
    """The repository's own root, from the Debian archive, unless it has an environment of
    that name (or its envrepo.yaml was there before and names another default base)."""
    assert request.root is not None
    repo, problems = open_repository(root.resolve(), explicit=True)
    if problems:
        raise EnvrepoError(*problems)
    catalog = load_catalog(repo)
    if request.root in catalog.specs or (repo.folder(request.root)).exists():
        return []
    description = f"Debian {request.suite} with python3 and venv, the root of this repository"
    made = scaffold_environment(
        catalog, Scaffold(request.root, description=description, bootstrap=request.suite)
    )
    return [f"{made.folder.relative_to(repo.root)}/"]
