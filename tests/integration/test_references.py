"""Every command that takes a reference to a published environment takes every form of one
(NAME, @N, @latest, @sha-COMMIT, @h-HASH, @sha256:DIGEST) the same way, or refuses it in one
line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import GOOD, RepoMaker, published, run_envrepo, serve_folder, snapshot, write_files

# Each form, and the version it names in an index with versions 1 (commit a…) and 2 (b…).
FORMS = {
    "env": 2,
    "env@latest": 2,
    "env@1": 1,
    "env@sha-aaaaaaa": 1,
    f"env@h-{2:064x}"[:20]: 2,
    f"env@sha256:{1:064x}": 1,
}
BAD = "env@v1"


@pytest.fixture
def index(tmp_path: Path) -> Path:
    published(tmp_path / "index", snapshot(GOOD))
    return tmp_path / "index"


def _one_line(args: list[str], root: Path) -> str:
    said = run_envrepo(*args, cwd=root)
    assert said.code == 2, (args, said.out, said.err)
    assert len(said.err.splitlines()) == 1, said.err
    return said.err.strip()


@pytest.mark.parametrize("form", FORMS)
def test_every_command_takes_every_form_of_reference(
    form: str, index: Path, make_repo: RepoMaker, tmp_path: Path
) -> None:
    root = make_repo("")
    number = FORMS[form]
    shown = run_envrepo("show", form, "--index", index, "--json", cwd=root)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["number"] == number
    resolved = run_envrepo("resolve", form, "--index", index, cwd=root)
    assert (resolved.code, resolved.out.strip()) == (0, f"registry.test/env@sha256:{number:064x}")
    pinned = run_envrepo("pin", form, "--index", index, cwd=root)
    assert pinned.code == 0, pinned.err
    assert pinned.out.startswith(f"pinned env@{number} ")
    target = tmp_path / "out"
    if form == "env":
        assert _one_line(["download", form, "--index", str(index), "-d", str(target)], root) == (
            "env: give NAME@VERSION: download takes one version"
        )
        assert _one_line(["diff", form, "--index", str(index)], root) == (
            "env: give NAME@VERSION; diff compares two versions"
        )
        return
    downloaded = run_envrepo("download", form, "--index", index, "-d", target, cwd=root)
    assert downloaded.code == 0, downloaded.err
    assert (target / "environment.yaml").read_bytes() == GOOD["environments/env/environment.yaml"]
    if number == 1:
        assert _one_line(["diff", form, "--index", str(index)], root) == (
            f"{form}: is the first version; give the version to compare with"
        )
        return
    changed = run_envrepo("diff", form, "--index", index, cwd=root)
    assert changed.code == 0, changed.err
    assert "numpy" in changed.out


@pytest.mark.parametrize("command", ["show", "resolve", "pin", "download", "diff"])
def test_a_reference_of_no_form_is_one_line_for_every_command(
    command: str, index: Path, make_repo: RepoMaker, tmp_path: Path
) -> None:
    root = make_repo("")
    extra = ["-d", str(tmp_path / "out")] if command == "download" else []
    assert _one_line([command, BAD, "--index", str(index), *extra], root) == (
        f"{BAD}: is not NAME, NAME@VERSION, NAME@latest, NAME@sha-COMMIT, NAME@h-HASH or "
        "NAME@sha256:DIGEST"
    )
    assert _one_line([command, "env@9", "--index", str(index), *extra], root) == (
        "env@9: no such version; env has 1, 2"
    )


def _missing_keys(document: dict[str, Any]) -> bytes:
    document.pop("environments", None)
    for entry in document.get("releases", []):
        entry.pop("image")
    return json.dumps(document).encode()


def _wrong_types(document: dict[str, Any]) -> bytes:
    document["environments"] = ["env"]
    for entry in document.get("releases", []):
        entry["number"] = "one"
        entry["folder"] = "folder.tar.gz"
    return json.dumps(document).encode()


MALFORMED: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "missing keys": _missing_keys,
    "wrong types": _wrong_types,
    "truncated": lambda document: json.dumps(document).encode()[:40],
    "50 MB": lambda document: json.dumps({**document, "description": "x" * (50 << 20)}).encode(),
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_index_over_http_is_exit_2_and_one_line_for_every_reader(
    kind: str, index: Path, make_repo: RepoMaker, tmp_path: Path
) -> None:
    root = make_repo("")
    with serve_folder(index) as url:
        assert run_envrepo("pin", "env@1", "--index", url, cwd=root).code == 0
        for name in ("index.json", "environments/env.json"):
            path = index / name
            path.write_bytes(MALFORMED[kind](json.loads(path.read_bytes())))
        write_files(
            root,
            {
                "environments/on-env/environment.yaml": (
                    "name: on-env\nbase:\n  published:\n    environment: env@1\n"
                    f'    index: {url}\npython: "3.11"\n'
                )
            },
        )
        for args in (
            ["list", "--index", url],
            ["show", "env@1", "--index", url],
            ["pin", "env@2", "--index", url],
            ["pin", "--check"],
            ["download", "env@1", "--index", url, "-d", str(tmp_path / "out")],
            ["lock", "on-env"],
        ):
            said = run_envrepo(*args, cwd=root)
            assert said.code == 2, (kind, args, said.out, said.err)
            lines = [x for x in said.err.splitlines() if not x.startswith("envrepo lock:")]
            assert len(lines) == 1, (kind, args, said.err)
            assert "Traceback" not in said.err and "bug" not in said.err, said.err
