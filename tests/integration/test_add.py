"""`envrepo add`: requirements added or replaced in place, comments and order kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from support import RepoMaker, run_envrepo, write_files

SPEC = """\
# The service's environment.
name: svc
base:
  image: python:3.11-slim@sha256:abababababababababababababababababababababababababababababababab   # the team's base
python: "3.11"
"""


@pytest.fixture
def repo(make_repo: RepoMaker) -> Path:
    root = make_repo("")
    write_files(root, {"environments/svc/environment.yaml": SPEC})
    return root


def test_add_creates_the_pip_input_and_keeps_the_spec_comments(repo: Path) -> None:
    result = run_envrepo("add", "svc", "numpy==1.26.4", "pandas==2.2.2", cwd=repo)
    assert result.code == 0, result.err
    folder = repo / "environments/svc"
    assert (folder / "requirements.txt").read_text() == "numpy==1.26.4\npandas==2.2.2\n"
    assert (folder / "environment.yaml").read_text() == SPEC + "pip: requirements.txt\n"


def test_add_replaces_the_same_package_in_place(repo: Path) -> None:
    write_files(
        repo,
        {
            "environments/svc/environment.yaml": SPEC + "pip: requirements.txt\n",
            "environments/svc/requirements.txt": (
                "# web\n"
                "Flask[async]==3.0.0 ; sys_platform == 'linux'  # the web layer\n"
                "-r extra.txt\n"
                "requests==2.31.0 \\\n"
                "    --hash=sha256:58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f\n"
                "# end\n"
            ),
            "environments/svc/extra.txt": "# extras\nnumpy==1.26.4\n",
        },
    )
    result = run_envrepo(
        "add",
        "svc",
        "flask==3.1.0",
        "requests==2.32.3",
        "NumPy==2.0.0",
        "attrs==23.2.0",
        cwd=repo,
    )
    assert result.code == 0, result.err
    folder = repo / "environments/svc"
    assert (folder / "requirements.txt").read_text() == (
        "# web\n"
        'flask[async]==3.1.0 ; sys_platform == "linux"  # the web layer\n'
        "-r extra.txt\n"
        "requests==2.32.3\n"
        "# end\n"
        "attrs==23.2.0\n"
    )
    assert (folder / "extra.txt").read_text() == "# extras\nNumPy==2.0.0\n"


def test_add_conda_keeps_comments_and_puts_packages_before_the_pip_list(repo: Path) -> None:
    conda = (
        "channels:\n"
        "  - conda-forge\n"
        "dependencies:\n"
        "  - numpy==1.26.4  # numerics\n"
        "  - pip:\n"
        "      - requests==2.31.0\n"
    )
    write_files(
        repo,
        {
            "environments/svc/environment.yaml": SPEC + "conda: conda.yaml\n",
            "environments/svc/conda.yaml": conda,
        },
    )
    result = run_envrepo("add", "svc", "--conda", "numpy==2.0.0", "scipy==1.13.0", cwd=repo)
    assert result.code == 0, result.err
    text = (repo / "environments/svc/conda.yaml").read_text()
    assert "# numerics" in text
    assert yaml.safe_load(text)["dependencies"] == [
        "numpy==2.0.0",
        "scipy==1.13.0",
        {"pip": ["requests==2.31.0"]},
    ]


def test_add_conda_creates_the_input_with_the_default_channels(make_repo: RepoMaker) -> None:
    root = make_repo("defaults:\n  channels: [my-channel]\n")
    write_files(root, {"environments/svc/environment.yaml": SPEC})
    assert run_envrepo("add", "svc", "--conda", "numpy==1.26.4", cwd=root).code == 0
    folder = root / "environments/svc"
    assert yaml.safe_load((folder / "conda.yaml").read_text()) == {
        "channels": ["my-channel"],
        "dependencies": ["numpy==1.26.4"],
    }
    assert yaml.safe_load((folder / "environment.yaml").read_text())["conda"] == "conda.yaml"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["numpy=1.0"], "numpy=1.0: is not a valid requirement"),
        (["git+https://example.invalid/x.git"], "a URL, path or VCS requirement"),
        (["--conda", "numpy>>1"], "numpy>>1: is not a conda match spec"),
        (["ok==1.0", "-e"], "No such option '-e'"),
    ],
)
def test_add_refuses_bad_packages_and_writes_nothing(
    repo: Path, args: list[str], message: str
) -> None:
    before = {p: p.read_bytes() for p in (repo / "environments/svc").iterdir()}
    result = run_envrepo("add", "svc", *args, cwd=repo)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert {p: p.read_bytes() for p in (repo / "environments/svc").iterdir()} == before


def test_add_to_an_unknown_environment(repo: Path) -> None:
    result = run_envrepo("add", "nope", "numpy==1.26.4", cwd=repo)
    assert result.code == 2
    assert result.err == "environments/nope: no such environment (known: svc); check the name\n"
