"""Spec hashes: stable across clones, checkouts and mtimes; moved by anything the image sees."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from envrepo.hashing import RENDER_SCHEME, hash_environments
from envrepo.repo.config import open_repository
from envrepo.repo.spec import load_catalog
from support import RepoMaker, git, run_envrepo, write_files

SPEC = """\
name: app
description: the first description
base:
  image: python:3.11-slim
python: "3.11"
apt: [libgomp1, curl]
variables: {OMP_NUM_THREADS: "1"}
labels: {team: ml}
"""

DOCKERFILE = "FROM python:3.11-slim\r\nCOPY extra.txt /extra.txt\r\n"


def hashes(root: Path) -> dict[str, str]:
    repo, problems = open_repository(root, explicit=True)
    assert problems == []
    return {n: h.value for n, h in hash_environments(load_catalog(repo)).items()}


@pytest.fixture
def repo(make_repo: RepoMaker) -> Path:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": SPEC,
            "environments/child/environment.yaml": "name: child\nbase:\n  environment: app\n",
            "environments/docker/environment.yaml": (
                "name: docker\nbase:\n  dockerfile: Dockerfile\n"
            ),
            "environments/docker/Dockerfile": DOCKERFILE,
            "environments/docker/extra.txt": "one\n",
            "environments/docker/tests/test_smoke.py": "print('ok')\n",
        },
    )
    return root


def test_a_fixed_spec_has_a_pinned_hash(repo: Path) -> None:
    # The hash is a contract with every registry holding images by it: if this fails, the
    # change to the hash inputs needs a RENDER_SCHEME bump and a note in the changelog.
    contract = {
        "scheme": 4,
        "parent": None,
        "files": {},
        "spec": {
            "name": "app",
            "base": {"image": "python:3.11-slim"},
            "python": "3.11",
            "apt": ["curl", "libgomp1"],
            "variables": {"OMP_NUM_THREADS": "1"},
            "user_managed": False,
            "interpreter": "/opt/env/bin/python",
            "platforms": ["linux/amd64"],
        },
    }
    canonical = json.dumps(contract, sort_keys=True, separators=(",", ":")).encode()
    pinned = "f33363630cde7979a0c443436245325d22ee0477f17bf630935971d5c9dca1a6"
    assert hashlib.sha256(canonical).hexdigest() == pinned
    assert hashes(repo)["app"] == pinned


def test_descriptive_fields_do_not_move_the_hash(repo: Path) -> None:
    before = hashes(repo)
    spec = repo / "environments/app/environment.yaml"
    spec.write_text(
        SPEC.replace("the first description", "another description").replace(
            "{team: ml}", "{team: research, tier: gold}"
        )
        + "curated: false\n"
    )
    assert hashes(repo) == before


def test_order_and_defaults_do_not_move_the_hash(repo: Path) -> None:
    before = hashes(repo)
    spec = repo / "environments/app/environment.yaml"
    spec.write_text(
        SPEC.replace("[libgomp1, curl]", "[curl, libgomp1]") + "platforms: [linux/amd64]\n"
    )
    assert hashes(repo) == before


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('python: "3.11"', 'python: "3.12"'),
        ("[libgomp1, curl]", "[libgomp1, curl, git]"),
        ('{OMP_NUM_THREADS: "1"}', '{OMP_NUM_THREADS: "2"}'),
        ("python:3.11-slim", "python:3.11-bookworm"),
        ("labels:", "user_managed: true\nlabels:"),
        ("labels:", "platforms: [linux/amd64, linux/arm64]\nlabels:"),
    ],
)
def test_a_change_the_image_sees_moves_the_hash_and_the_childs(
    repo: Path, old: str, new: str
) -> None:
    before = hashes(repo)
    spec = repo / "environments/app/environment.yaml"
    spec.write_text(SPEC.replace(old, new))
    after = hashes(repo)
    assert after["app"] != before["app"]
    assert after["child"] != before["child"]
    assert after["docker"] == before["docker"]


def test_build_context_files_move_the_hash_but_tests_do_not(repo: Path) -> None:
    before = hashes(repo)
    (repo / "environments/docker/tests/test_smoke.py").write_text("print('changed')\n")
    assert hashes(repo) == before
    (repo / "environments/docker/extra.txt").write_text("two\n")
    assert hashes(repo)["docker"] != before["docker"]


def test_line_endings_and_mtimes_do_not_move_the_hash(repo: Path) -> None:
    before = hashes(repo)
    dockerfile = repo / "environments/docker/Dockerfile"
    dockerfile.write_bytes(DOCKERFILE.replace("\r\n", "\n").encode())
    os.utime(dockerfile, (0, 0))
    assert hashes(repo) == before


def test_same_hash_from_clones_in_other_places_and_crlf_checkouts(
    repo: Path, tmp_path: Path
) -> None:
    write_files(
        repo,
        {
            "environments/app/requirements.txt": "numpy==1.26.4\n",
            "environments/app/requirements.lock": "# envrepo-lock-format: 1\nnumpy==1.26.4\n",
        },
    )
    spec = repo / "environments/app/environment.yaml"
    spec.write_text(SPEC + "pip: requirements.txt\n")
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "environments", cwd=repo)
    plain = tmp_path / "somewhere" / "plain"
    crlf = tmp_path / "elsewhere" / "deeper" / "crlf"
    git("clone", "-q", str(repo), str(plain), cwd=tmp_path)
    git("-c", "core.autocrlf=true", "clone", "-q", str(repo), str(crlf), cwd=tmp_path)
    assert b"\r\n" in (crlf / "environments/app/requirements.lock").read_bytes()
    for path in crlf.rglob("*"):
        if path.is_file():
            os.utime(path, (1, 1))
    outputs = [run_envrepo("hash", "--json", cwd=root).out for root in (repo, plain, crlf)]
    assert outputs[0] == outputs[1] == outputs[2]
    lock_bytes = (repo / "environments/app/requirements.lock").read_bytes()
    assert json.loads(outputs[0])[0]["inputs"]["files"] == {
        "requirements.lock": hashlib.sha256(lock_bytes).hexdigest()
    }


def test_lock_bytes_move_the_hash(repo: Path) -> None:
    write_files(repo, {"environments/app/requirements.lock": "numpy==1.26.4\n"})
    (repo / "environments/app/environment.yaml").write_text(SPEC + "pip: requirements.txt\n")
    before = hashes(repo)
    (repo / "environments/app/requirements.lock").write_text("numpy==1.26.5\n")
    assert hashes(repo)["app"] != before["app"]


def test_hash_json_names_the_inputs(repo: Path) -> None:
    result = run_envrepo("hash", "--json", "child", cwd=repo)
    assert result.code == 0, result.err
    [child] = json.loads(result.out)
    assert child["name"] == "child"
    assert child["inputs"]["parent"]["name"] == "app"
    assert child["inputs"]["parent"]["hash"] == hashes(repo)["app"]
    assert child["inputs"]["scheme"] == RENDER_SCHEME
    assert "description" not in child["inputs"]["spec"]
