"""Scaffolding environments from nothing, a conda file, a requirements file or a prefix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support import RepoMaker, make_wheel, run_envrepo, write_files

CONFIG = """\
reserved_prefix: team-
defaults:
  python: "3.11"
  base:
    image: python:3.11-slim@sha256:abababababababababababababababababababababababababababababababab
"""

ENVIRONMENT_YML = """\
name: science
channels:
  - conda-forge
  - bioconda
dependencies:
  - python=3.10
  # numerics
  - numpy==1.26.4
  - scipy==1.11.4  # pinned for the paper
  - pip
  - pip:
      - requests==2.31.0
      - rich[jupyter]==13.7.0 ; python_version >= "3.8"
"""


@pytest.fixture
def repo(make_repo: RepoMaker) -> Path:
    return make_repo(CONFIG)


def validate_lines(root: Path, name: str) -> list[str]:
    result = run_envrepo("validate", f"environments/{name}", cwd=root)
    assert "Traceback" not in result.err
    return result.out.splitlines()


def missing_lock(name: str, field: str, source: str, lock: str) -> str:
    return (
        f"environments/{name}/environment.yaml: {field}: {source} has no lock "
        f"({lock} is missing); run envrepo lock {name}"
    )


def test_empty_scaffold_validates(repo: Path) -> None:
    result = run_envrepo("scaffold", "plain", "--description", "nothing yet", cwd=repo)
    assert result.code == 0, result.err
    assert result.out == "created environments/plain\n"
    spec = yaml.safe_load((repo / "environments/plain/environment.yaml").read_text())
    assert spec == {
        "name": "plain",
        "description": "nothing yet",
        "base": {
            "image": "python:3.11-slim@sha256:abababababababababababababababababababababababababababababababab"
        },
        "python": "3.11",
    }
    assert validate_lines(repo, "plain") == []


def test_scaffold_refuses_to_overwrite(repo: Path) -> None:
    assert run_envrepo("scaffold", "plain", cwd=repo).code == 0
    before = (repo / "environments/plain/environment.yaml").read_bytes()
    result = run_envrepo("scaffold", "plain", "--python", "3.12", cwd=repo)
    assert result.code == 2
    assert result.err == (
        "environments/plain: already exists; pick another name or edit that environment\n"
    )
    assert (repo / "environments/plain/environment.yaml").read_bytes() == before


def test_scaffold_refuses_reserved_prefix_unless_curated(repo: Path) -> None:
    result = run_envrepo("scaffold", "team-tools", cwd=repo)
    assert result.code == 2
    assert "reserved for curated environments" in result.err
    assert not (repo / "environments/team-tools").exists()
    assert run_envrepo("scaffold", "team-tools", "--curated", cwd=repo).code == 0
    assert validate_lines(repo, "team-tools") == []


def test_from_conda_takes_channels_pip_list_and_python(repo: Path, tmp_path: Path) -> None:
    source = tmp_path / "environment.yml"
    source.write_text(ENVIRONMENT_YML)
    result = run_envrepo("scaffold", "science", "--from-conda", source, cwd=repo)
    assert result.code == 0, result.err
    folder = repo / "environments/science"
    spec = yaml.safe_load((folder / "environment.yaml").read_text())
    assert spec["python"] == "3.10"
    assert spec["conda"] == "conda.yaml"
    assert spec["pip"] == "requirements.txt"
    conda = (folder / "conda.yaml").read_text()
    # A conda environment brings its own python: it stays among the conda packages.
    assert yaml.safe_load(conda) == {
        "channels": ["conda-forge", "bioconda"],
        "dependencies": ["python=3.10", "numpy==1.26.4", "scipy==1.11.4", "pip"],
    }
    assert "# pinned for the paper" in conda
    assert (folder / "requirements.txt").read_text().splitlines()[1:] == [
        "requests==2.31.0",
        'rich[jupyter]==13.7.0 ; python_version >= "3.8"',
    ]
    assert validate_lines(repo, "science") == [
        "environments/science: warning: 2 inputs are not pinned to one version (python, pip); "
        "conda.lock pins them, and a re-lock may move them: review the lock's diff, or pin "
        "them with == in the input",
        missing_lock("science", "conda", "conda.yaml", "conda.lock"),
        missing_lock("science", "pip", "requirements.txt", "requirements.lock"),
    ]


def test_from_pip_inlines_includes_and_keeps_markers_extras_comments(
    repo: Path, tmp_path: Path
) -> None:
    write_files(
        tmp_path / "src",
        {
            "requirements.txt": (
                "# service dependencies\n"
                "-r common/base.txt\n"
                'flask[async]==3.0.0 ; sys_platform == "linux"  # the web layer\n'
                "gunicorn==21.2.0 \\\n"
                "    ; python_version >= '3.8'\n"
                "\n"
                "pandas>=2.1\n"
            ),
            "common/base.txt": "numpy==1.26.4  # shared pin\n-r more.txt\n",
            "common/more.txt": "attrs==23.2.0\n",
        },
    )
    result = run_envrepo(
        "scaffold", "service", "--from-pip", tmp_path / "src/requirements.txt", cwd=repo
    )
    assert result.code == 0, result.err
    assert (repo / "environments/service/requirements.txt").read_text().splitlines() == [
        "# service dependencies",
        "# -r common/base.txt (inlined below)",
        "numpy==1.26.4  # shared pin",
        "# -r more.txt (inlined below)",
        "attrs==23.2.0",
        'flask[async]==3.0.0 ; sys_platform == "linux"  # the web layer',
        "gunicorn==21.2.0     ; python_version >= '3.8'",
        "",
        "pandas>=2.1",
    ]
    assert validate_lines(repo, "service") == [
        "environments/service: warning: 1 input is not pinned to one version (pandas); "
        "requirements.lock pins them, and a re-lock may move them: review the lock's diff, "
        "or pin them with == in the input",
        missing_lock("service", "pip", "requirements.txt", "requirements.lock"),
    ]


def test_from_pip_leaves_out_an_index_option_with_a_warning(repo: Path, tmp_path: Path) -> None:
    source = tmp_path / "requirements.txt"
    source.write_text("--extra-index-url https://example.invalid/simple\nnumpy==1.26.4\n")
    result = run_envrepo("scaffold", "service", "--from-pip", source, cwd=repo)
    assert result.code == 0, result.err
    assert result.err.splitlines()[0] == (
        f"{source}: line 1: warning: --extra-index-url sets its own package index; left out: "
        "envrepo locks from the index uv is configured with, and a private package goes into "
        "wheels/"
    )
    assert (repo / "environments/service/requirements.txt").read_text() == "numpy==1.26.4\n"


def test_from_env_pins_what_a_real_venv_has_installed(repo: Path, tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "alpha-tools", "1.2.3", requires=("beta-lib>=0.9",))
    make_wheel(wheelhouse, "beta-lib", "0.9.1")
    venv = tmp_path / "trained-here"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin/python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "alpha-tools",
        ],
        check=True,
        capture_output=True,
    )
    result = run_envrepo("scaffold", "from-venv", "--from-env", venv, cwd=repo)
    assert result.code == 0, result.err
    folder = repo / "environments/from-venv"
    assert (folder / "requirements.txt").read_text().splitlines()[1:] == [
        "alpha-tools==1.2.3",
        "beta-lib==0.9.1",
    ]
    spec = yaml.safe_load((folder / "environment.yaml").read_text())
    assert spec["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert validate_lines(repo, "from-venv") == [
        missing_lock("from-venv", "pip", "requirements.txt", "requirements.lock")
    ]


def test_from_env_reads_a_conda_prefix(repo: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "envs" / "analysis"
    records = {
        "python-3.11.8-hab00c5b_0_cpython": {
            "name": "python",
            "version": "3.11.8",
            "build": "hab00c5b_0_cpython",
            "channel": "https://conda.anaconda.org/conda-forge/linux-64",
        },
        "numpy-1.26.4-py311h64a7726_0": {
            "name": "numpy",
            "version": "1.26.4",
            "build": "py311h64a7726_0",
            "channel": "https://conda.anaconda.org/conda-forge/linux-64",
        },
        "samtools-1.19-h50ea8bc_0": {
            "name": "samtools",
            "version": "1.19",
            "build": "h50ea8bc_0",
            "channel": "https://conda.anaconda.org/bioconda/linux-64",
        },
    }
    for stem, record in records.items():
        write_files(prefix, {f"conda-meta/{stem}.json": json.dumps(record)})
    site = prefix / "lib/python3.11/site-packages"
    make_wheel(tmp_path / "wh", "gamma", "2.0.0")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--target",
            str(site),
            str(tmp_path / "wh/gamma-2.0.0-py3-none-any.whl"),
        ],
        check=True,
        capture_output=True,
    )
    result = run_envrepo("scaffold", "analysis", "--from-env", prefix, cwd=repo)
    assert result.code == 0, result.err
    folder = repo / "environments/analysis"
    assert yaml.safe_load((folder / "conda.yaml").read_text()) == {
        "channels": ["conda-forge", "bioconda"],
        "dependencies": ["numpy==1.26.4", "python==3.11.8", "samtools==1.19"],
    }
    assert (folder / "requirements.txt").read_text().splitlines()[1:] == ["gamma==2.0.0"]
    assert yaml.safe_load((folder / "environment.yaml").read_text())["python"] == "3.11"


def test_from_env_refuses_a_folder_that_is_no_environment(repo: Path, tmp_path: Path) -> None:
    result = run_envrepo("scaffold", "x", "--from-env", tmp_path, cwd=repo)
    assert result.code == 2
    assert result.err == (
        f"{tmp_path}: is neither a conda environment (no conda-meta/) nor a virtual "
        "environment (no pyvenv.cfg); pass the prefix of one\n"
    )


def test_python_must_match_the_base_environment(repo: Path) -> None:
    assert run_envrepo("scaffold", "root", "--python", "3.11", cwd=repo).code == 0
    result = run_envrepo(
        "scaffold", "leaf", "--base-environment", "root", "--python", "3.12", cwd=repo
    )
    assert result.code == 2
    assert "python 3.12 differs from 3.11 of the base environment root" in result.err
    assert run_envrepo("scaffold", "leaf", "--base-environment", "root", cwd=repo).code == 0
    assert validate_lines(repo, "leaf") == []


def test_a_files_python_the_base_cannot_give_is_a_warning_not_a_refusal(
    repo: Path, tmp_path: Path
) -> None:
    assert run_envrepo("scaffold", "root", "--python", "3.11", cwd=repo).code == 0
    source = tmp_path / "requirements.txt"
    source.write_text("python==3.10.4\nnumpy==1.26.4\n")
    result = run_envrepo(
        "scaffold", "app", "--from-pip", source, "--base-environment", "root", cwd=repo
    )
    assert result.code == 0, result.err
    assert result.err.splitlines()[:2] == [
        f"{source}: line 1: warning: python==3.10.4: python is not a pip package; left out, "
        "and taken as the environment's python (3.10)",
        "environments/app: python: warning: the file asks for python 3.10, and the base "
        "environment root has 3.11: the environment gets 3.11; to keep 3.10, scaffold again "
        "with --base-image of a python 3.10 image",
    ]
    spec = yaml.safe_load((repo / "environments/app/environment.yaml").read_text())
    assert spec["python"] == "3.11"
    assert (repo / "environments/app/requirements.txt").read_text() == "numpy==1.26.4\n"


def test_a_conda_file_gets_a_base_without_a_venv_and_keeps_its_python(
    make_repo: RepoMaker, tmp_path: Path
) -> None:
    root = make_repo('defaults:\n  python: "3.11"\n  base:\n    environment: venv\n')
    image = "debian:12@sha256:" + "ab" * 32
    write_files(
        root,
        {
            "environments/os/environment.yaml": (
                f'name: os\nbase:\n  image: {image}\npython: "3.11"\nuser_managed: true\n'
            ),
            "environments/venv/environment.yaml": (
                'name: venv\nbase:\n  environment: os\npython: "3.11"\n'
            ),
            "environments/plain/environment.yaml": (
                f'name: plain\nbase:\n  image: {image}\npython: "3.11"\n'
            ),
        },
    )
    for python in ("3.7", "3.10", "3.12"):
        source = tmp_path / f"py{python}.yml"
        source.write_text(
            f"channels: [conda-forge]\ndependencies:\n  - python={python}\n  - numpy==1.26.4\n"
        )
        name = f"legacy{python.replace('.', '')}"
        result = run_envrepo("scaffold", name, "--from-conda", source, cwd=root)
        assert result.code == 0, result.err
        assert result.err.splitlines()[0] == (
            "chose base os: a conda environment brings its own python at /opt/env, and venv "
            "has a virtual environment there; os is the nearest base under it without one"
        )
        spec = yaml.safe_load((root / f"environments/{name}/environment.yaml").read_text())
        assert (spec["base"], spec["python"]) == ({"environment": "os"}, python)
        assert [line for line in validate_lines(root, name) if ": warning: " not in line] == [
            missing_lock(name, "conda", "conda.yaml", "conda.lock")
        ]
    # A root with a venv and an image under it: the conda environment goes on that image.
    source = tmp_path / "py3.12.yml"
    result = run_envrepo(
        "scaffold", "on-image", "--from-conda", source, "--base-environment", "plain", cwd=root
    )
    assert result.code == 2
    assert result.err == (
        "environments/on-image: base: a conda environment is its own prefix at /opt/env, and "
        "plain has a virtual environment there; pass a base without one, or no base and "
        "scaffold chooses\n"
    )
    (root / "envrepo.yaml").write_text("defaults:\n  base:\n    environment: plain\n")
    result = run_envrepo("scaffold", "on-image", "--from-conda", source, cwd=root)
    assert result.code == 0, result.err
    assert result.err.splitlines()[0] == f"chose base image {image}, the image under plain"


@pytest.mark.parametrize(
    "option", ["--from-pip", "--from-conda", "--from-pyproject", "--from-uv-lock"]
)
def test_a_fifo_or_a_device_as_the_source_is_one_line_and_no_folder(
    repo: Path, tmp_path: Path, option: str
) -> None:
    import os

    fifo = tmp_path / "source"
    os.mkfifo(fifo)
    for source, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device")):
        result = run_envrepo("scaffold", "app", option, source, cwd=repo, timeout=30)
        assert result.code == 2
        [line] = result.err.splitlines()
        assert line.startswith(f"{source}: is {kind}, expected a ")
        assert line.endswith("; replace it with a file")
        assert not (repo / "environments/app").exists()
