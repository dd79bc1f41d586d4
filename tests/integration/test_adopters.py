"""Adopters' own files: a corpus of requirement files shaped like those of real projects
(Azure ML assets, pangeo, Lightning, transformers, pytorch examples), one folder per shape
under tests/adopters/. Each scaffolds as it is, with every warning asserted line by line, and
what it gives pip locks (against a local index holding the names and versions it asks for)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from support import RepoMaker, make_index, make_sdist, make_wheel, run_envrepo, serve_folder

ADOPTERS = Path(__file__).parent.parent / "adopters"
CASES = sorted(p.name for p in ADOPTERS.iterdir() if (p / "case.json").is_file())
CONFIG = """\
defaults:
  python: "3.11"
  base:
    image: python:3.11-slim@sha256:abababababababababababababababababababababababababababababababab
"""
# Versions a local index offers for a name the file names without one it takes.
CANDIDATES = ("99.0", "2.4.0", "1.5.0", "0.9.0")


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The loopback file server the corpus's URLs name: what its files put for `{server}`,
    and for `{NAME_sha256}` and `{NAME_sha12}` of each wheel on it."""
    folder = tmp_path_factory.mktemp("served")
    wheels = [make_wheel(folder, "mylib", "1.0"), make_wheel(folder, "helper", "0.3")]
    make_sdist(folder, "legacy", "3.2")
    (folder / "archive.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    with serve_folder(folder) as url:
        values = {"{server}": url}
        for wheel in wheels:
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            stem = wheel.name.split("-")[0]
            values |= {f"{{{stem}_sha256}}": digest, f"{{{stem}_sha12}}": digest[:12]}
        yield values


def placed(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def test_corpus_has_a_file_per_shape() -> None:
    kinds = [json.loads((ADOPTERS / c / "case.json").read_text())["from"] for c in CASES]
    assert len(CASES) >= 20
    assert {"--from-pip", "--from-conda", "--from-pyproject", "--from-uv-lock"} <= set(kinds)


def local_index(folder: Path, root: Path) -> str:
    """A local index with a wheel for each requirement the scaffolded inputs name, at the
    version they pin, else one their range takes."""
    from envrepo.inputs import requirements

    parsed = requirements.parse(folder / "requirements.txt", folder.resolve(), Path("env"))
    pinned = {
        requirements.canonical(line.requirement.name): line.requirement.specifier
        for line in parsed.lines
        if line.requirement is not None and line.constraint
    }
    wheels = []
    for requirement in parsed.requirements:
        name = requirements.canonical(requirement.name)
        wanted = requirement.specifier & pinned.get(name, SpecifierSet())
        named = [s.version.removesuffix(".*") for s in wanted if s.operator in ("==", ">=", "~=")]
        version = next(v for v in (*named, *CANDIDATES) if wanted.contains(v))
        if not (folder / "wheels").is_dir() or not list((folder / "wheels").glob(f"{name}-*")):
            wheels.append(make_wheel(root / "files", name, version))
    return make_index(root / "simple", wheels)


@pytest.mark.parametrize("name", CASES)
def test_adopters_file_scaffolds_as_it_is_and_locks(
    name: str, make_repo: RepoMaker, tmp_path: Path, files_server: dict[str, str]
) -> None:
    case = json.loads((ADOPTERS / name / "case.json").read_text())
    source = tmp_path / "source"
    shutil.copytree(
        ADOPTERS / name, source, ignore=shutil.ignore_patterns("case.json", "expected.txt")
    )
    for path in source.rglob("*"):
        if path.is_file() and path.suffix != ".whl":
            path.write_text(placed(path.read_text(), files_server))
    before = {p: p.read_bytes() for p in source.rglob("*") if p.is_file()}
    repo = make_repo(CONFIG)
    env_name = name.replace("_", "-")
    result = run_envrepo(
        "-C",
        repo,
        "scaffold",
        env_name,
        case["from"],
        case["file"],
        *[arg for group in case.get("groups", []) for arg in ("--group", group)],
        cwd=source,
    )
    assert result.code == 0, result.err
    expected = placed((ADOPTERS / name / "expected.txt").read_text(), files_server)
    assert result.err.splitlines() == expected.splitlines()
    assert {p: p.read_bytes() for p in source.rglob("*") if p.is_file()} == before
    folder = repo / "environments" / env_name
    spec = yaml.safe_load((folder / "environment.yaml").read_text())
    assert spec["python"] == case["python"]
    assert spec.get("variables") == case.get("variables")
    for file, key in (("requirements.txt", "requirements"), ("conda.yaml", "conda")):
        if key in case:
            assert (folder / file).read_text().splitlines() == case[key]
    assert sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    ) == sorted(["environment.yaml", *case["files"]])
    if "conda.yaml" in case["files"]:
        return  # no conda channel is reachable here; test_lock locks conda against its own
    index = local_index(folder, tmp_path / "index")
    env = {"UV_DEFAULT_INDEX": index, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    locked = run_envrepo("-C", repo, "lock", env_name, cwd=repo, env=env)
    assert locked.code == 0, locked.err
    assert run_envrepo("-C", repo, "validate", env_name, cwd=repo).code == 0
    assert run_envrepo("-C", repo, "lock", "--check", env_name, cwd=repo).code == 0
