"""The corpus of bad inputs: each folder under corpus/ is a repository and the exact lines
envrepo must print for it. Every case runs through the installed `envrepo` command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support import Result, run_envrepo

CORPUS = Path(__file__).parent.parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.json").is_file())


def materialize(case: Path, target: Path) -> dict[str, object]:
    """Copy the case's repository to `target`, adding files too big or odd to commit."""
    meta: dict[str, object] = json.loads((case / "case.json").read_text())
    shutil.copytree(case / "repo", target, symlinks=True)
    for relative, size in dict(meta.get("generate", {})).items():  # type: ignore[call-overload]
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"# padding\n" * (int(size) // 10))
    for relative, pointee in dict(meta.get("symlinks", {})).items():  # type: ignore[call-overload]
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(pointee)
    return meta


def run_case(name: str, tmp_path: Path) -> tuple[dict[str, object], Result]:
    root = tmp_path / name
    meta = materialize(CORPUS / name, root)
    args = [str(a) for a in meta["args"]]  # type: ignore[attr-defined]
    return meta, run_envrepo("-C", root, *args, cwd=root)


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", CASES)
def test_case_prints_exactly_its_lines(name: str, tmp_path: Path) -> None:
    meta, result = run_case(name, tmp_path)
    expected = (CORPUS / name / "expected.txt").read_text().splitlines()
    assert result.lines == expected
    assert result.code == meta["exit"]


def test_whole_corpus_exits_1_or_2_without_traceback(tmp_path: Path) -> None:
    failures = []
    for name in CASES:
        _, result = run_case(name, tmp_path)
        if result.code not in (1, 2) or "Traceback" in result.out + result.err:
            failures.append(f"{name}: exit {result.code}\n{result.err}")
        if any(not line.strip() for line in result.lines):
            failures.append(f"{name}: printed an empty line")
    assert not failures, "\n".join(failures)
