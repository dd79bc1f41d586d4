"""Hostile environment folders, through the installed envrepo: every path hash, lock and build
read is a regular file or folder inside the environment's folder, validate refuses what build
would fail on, a lock is what its header says, a dirty tree gets no commit tag, and render
prints what build makes. A marker file planted outside every repository must never show up
in any output, record or log."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import docker
import pytest

from envrepo.inputs.sources import lock_inputs
from envrepo.lock import files as lock
from envrepo.repo.config import open_repository
from envrepo.repo.spec import load_catalog
from support import (
    CHILD,
    Built,
    RepoMaker,
    git,
    is_pushed,
    run_envrepo,
    tags_of,
    write_files,
    write_fresh_lock,
)

MARKER = "ENVREPO-HOST-MARKER-7f3c"
APP = (
    "name: app\nbase:\n  image: python:3.11-slim@sha256:" + "ab" * 32 + '\npython: "3.11"\n'
    "pip: requirements.txt\n"
)
DOCKERFILE_APP = (
    'name: app\nbase:\n  dockerfile: Dockerfile\npython: "3.11"\nuser_managed: true\n'
    "interpreter: /usr/bin/python3\n"
)
LOCK_BODY = "numpy==1.26.4 \\\n    --hash=sha256:" + "a" * 64 + "\n"
LEADS_OUT = (
    "is a symlink that leads outside the environment's folder; copy the file into the folder"
)
FIFO = "is a FIFO, not a regular file; replace it with a file"

# Where a hostile entry is planted (relative to environments/app), and whether `hash` reads it.
PLACES = {
    "pip input": ("requirements.txt", False),
    "pip lock": ("requirements.lock", True),
    "private wheel": ("wheels/x-1.0-py3-none-any.whl", True),
    "tests folder": ("tests", False),
    "spec": ("environment.yaml", False),
    "Dockerfile folder": ("data.txt", True),
}
TARGETS = ("the root folder", "a host file", "a device", "a FIFO")


@pytest.fixture
def marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host file outside every repository, whose text must never be printed or kept."""
    path = tmp_path_factory.mktemp("host") / "secret.txt"
    path.write_text(f"{MARKER}\n")
    return path


def app_repo(make_repo: RepoMaker, spec: str = APP) -> Path:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": spec,
            "environments/app/requirements.txt": "numpy==1.26.4\n",
        },
    )
    if "pip:" in spec:
        write_fresh_lock(root, "app", LOCK_BODY)
    return root


def plant(path: Path, target: str, marker: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    if target == "a FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to(
            {"the root folder": "/", "a host file": marker, "a device": "/dev/zero"}[target]
        )


def expected_line(place: str, relative: str, target: str) -> str:
    if place == "pip input" and target != "a FIFO":
        # The spec's own field names the path, so the line points at the field.
        return f"environments/app/environment.yaml: pip: 'requirements.txt' {LEADS_OUT}"
    if place == "spec" and target == "a FIFO":
        return (
            "environments/app/environment.yaml: is a FIFO, expected a spec; replace it with a file"
        )
    return f"environments/app/{relative}: {FIFO if target == 'a FIFO' else LEADS_OUT}"


def assert_nothing_leaked(texts: list[str], marker: Path) -> None:
    secret = hashlib.sha256(marker.read_bytes()).hexdigest()
    for text in texts:
        assert MARKER not in text
        assert secret not in text


def everything_written(root: Path) -> list[str]:
    """Every record and log envrepo wrote in `root`, and the crash log of this test's home."""
    home = Path(os.environ["XDG_STATE_HOME"])
    files = [*(root / ".envrepo").rglob("*"), *home.rglob("*")]
    return [path.read_text(errors="replace") for path in files if path.is_file()]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("place", PLACES)
def test_a_hostile_path_is_refused_and_nothing_outside_is_read(
    place: str, target: str, make_repo: RepoMaker, marker: Path
) -> None:
    relative, hashed = PLACES[place]
    spec = APP + ("wheels: wheels\n" if place == "private wheel" else "")
    if place == "Dockerfile folder":
        spec = DOCKERFILE_APP
    root = app_repo(make_repo, spec)
    folder = root / "environments/app"
    (folder / "Dockerfile").write_text("FROM scratch\n")
    if place == "tests folder":
        (folder / "tests").mkdir()
    plant(folder / relative, target, marker)

    line = expected_line(place, relative, target)
    validated = run_envrepo("validate", cwd=root, timeout=60)
    assert (validated.code, validated.lines) == (
        1,
        [line, "envrepo validate: 1 error, 0 warnings in 1 environment"],
    )
    hashed_out = run_envrepo("hash", "--json", cwd=root, timeout=60)
    if hashed:
        assert (hashed_out.code, hashed_out.lines) == (2, [line])
    else:
        assert hashed_out.code == 0, hashed_out.err
    listed = run_envrepo("list", "--json", cwd=root, timeout=60)
    checked = run_envrepo("lock", "--check", cwd=root, timeout=60)
    built = run_envrepo("build", "--registry", "127.0.0.1:9", cwd=root, timeout=60)
    assert built.code == 1 and line in built.lines
    assert listed.code == 0 and checked.code in (0, 1, 2)
    outputs = [r.out + r.err for r in (validated, hashed_out, listed, checked, built)]
    assert_nothing_leaked(outputs + everything_written(root), marker)


def test_symlinks_that_stay_inside_the_folder_are_fine(make_repo: RepoMaker) -> None:
    root = app_repo(make_repo)
    folder = root / "environments/app"
    (folder / "locks").mkdir()
    (folder / "requirements.lock").rename(folder / "locks/app.lock")
    (folder / "requirements.lock").symlink_to("locks/app.lock")
    write_files(folder, {"checks/test_ok.py": "print('ok')\n"})
    (folder / "tests").symlink_to("checks")
    assert run_envrepo("validate", cwd=root).code == 0
    assert run_envrepo("hash", cwd=root).code == 0


def test_an_environment_folder_that_leads_out_of_the_repository_is_refused(
    make_repo: RepoMaker, tmp_path: Path
) -> None:
    root = make_repo("")
    elsewhere = tmp_path / "elsewhere" / "app"
    write_files(elsewhere, {"environment.yaml": APP.replace("pip: requirements.txt\n", "")})
    (root / "environments/app").symlink_to(elsewhere)
    result = run_envrepo("validate", cwd=root)
    assert (result.code, result.lines) == (
        1,
        [
            "environments/app: is a symlink to a folder outside the repository or of another "
            "name; move the environment's folder here",
            "envrepo validate: 1 error, 0 warnings in 0 environments",
        ],
    )


def test_variables_a_process_cannot_start_with_are_refused_before_any_build(
    make_repo: RepoMaker,
) -> None:
    big = "x" * 200_000
    spec = APP.replace("pip: requirements.txt\n", "") + (
        f'variables:\n  NUL: "a\\0b"\n  BIG: "{big}"\n  FINE: "1"\n'
    )
    root = app_repo(make_repo, spec)
    lines = [
        "environments/app/environment.yaml: variables.BIG: is 195 KiB; Linux starts no program "
        "with a variable over 127 KiB: shorten it, or ship the value as a file in the image",
        "environments/app/environment.yaml: variables.NUL: holds a NUL character, which no "
        "environment variable can; remove it",
    ]
    validated = run_envrepo("validate", cwd=root)
    assert (validated.code, validated.lines[:-1]) == (1, lines)
    built = run_envrepo("build", "--registry", "127.0.0.1:9", cwd=root)
    assert (built.code, built.lines) == (1, lines)


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (
            "numpy==1.26.3 \\\n    --hash=sha256:" + "a" * 64 + "\n",
            "is not what its header records: its packages were edited by hand",
        ),
        (
            LOCK_BODY + "NumPy==1.26.3\n",
            "names NumPy twice (lines 7 and 9), which would install two versions of it",
        ),
    ],
)
def test_a_doctored_lock_is_never_built(make_repo: RepoMaker, body: str, line: str) -> None:
    root = app_repo(make_repo)
    path = root / "environments/app/requirements.lock"
    header, _ = lock.split(path.read_text())
    if "twice" in line:
        # Doctored with care: the header's digest matches the doctored body.
        header = [
            f"# body-digest: {lock.body_digest(body)}" if h.startswith("# body-digest") else h
            for h in header
        ]
    path.write_text("\n".join(header) + "\n" + body)
    result = run_envrepo("build", "--registry", "127.0.0.1:9", cwd=root)
    assert (result.code, result.lines) == (
        1,
        [f"environments/app/requirements.lock: {line}; run envrepo lock app"],
    )


def write_image_lock(root: Path, name: str, body: str) -> None:
    """base-image.lock for `name` with a header that matches its inputs (no registry asked)."""
    spec = load_catalog(open_repository(root, explicit=True)[0]).specs[name]
    [item] = [i for i in lock_inputs(spec) if i.field == "image"]
    digest = lock.input_digest(spec, item, [])
    item.lock.write_text(lock.lock_text(spec, item, digest, body, "registry API v2"))


def test_render_prints_what_build_makes(make_repo: RepoMaker) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/root/environment.yaml": (
                'name: root\nbase:\n  image: python:3.11-slim\npython: "3.11"\n'
                "variables:\n"
                '  GREETING: "say \\"hi\\" to $HOME"\n'
                "  WINDOWS: 'C:\\dir\\new'\n"
            ),
            "environments/child/environment.yaml": (
                'name: child\nbase:\n  environment: root\npython: "3.11"\n'
            ),
        },
    )
    digest = "sha256:" + "c" * 64
    write_image_lock(root, "root", f"python:3.11-slim@{digest}\n# python: 3.11.9\n")
    rendered = run_envrepo("render", "root", cwd=root)
    assert rendered.code == 0, rendered.err
    assert rendered.out.splitlines()[2:] == [
        f"FROM python:3.11-slim@{digest}",
        'RUN ["python3", "-m", "venv", "--without-pip", "/opt/env"]',
        "ENV VIRTUAL_ENV=/opt/env PATH=/opt/env/bin:$PATH",
        'ENV GREETING="say \\"hi\\" to \\$HOME"',
        'ENV WINDOWS="C:\\\\dir\\\\new"',
    ]
    child = run_envrepo("render", "child", cwd=root)
    assert "PATH" not in child.out  # the parent's image has /opt/env/bin on PATH already


def test_render_refuses_a_line_break_it_cannot_write(make_repo: RepoMaker) -> None:
    spec = APP.replace("pip: requirements.txt\n", "") + 'variables:\n  PEM: "a\\nb"\n'
    root = app_repo(make_repo, spec)
    result = run_envrepo("render", "app", cwd=root)
    assert (result.code, result.lines) == (
        2,
        [
            "environments/app/environment.yaml: variables.PEM: holds a line break, which a "
            "Dockerfile cannot write; envrepo build sets it as it is, but render cannot print it"
        ],
    )


def test_rendered_variables_read_back_exactly_in_a_docker_build(
    docker_ready: None, tmp_path: Path
) -> None:
    from envrepo.image.render import _quoted
    from envrepo.repo.spec import Base, Spec

    values = {"GREETING": 'say "hi" to $HOME', "WINDOWS": "C:\\dir\\new", "EMPTY": ""}
    spec = Spec("app", tmp_path, "environments/app", Base("image", "scratch"), "3.11")
    lines = [f"ENV {key}={_quoted(spec, key, value)}" for key, value in values.items()]
    (tmp_path / "Dockerfile").write_text("FROM scratch\n" + "\n".join(lines) + "\n")
    client = docker.from_env()
    image, _ = client.images.build(path=str(tmp_path), rm=True, pull=False)
    try:
        env = dict(item.split("=", 1) for item in image.attrs["Config"]["Env"])
        assert {key: env[key] for key in values} == values
    finally:
        client.images.remove(image.id, force=True)


def test_a_dirty_environment_gets_no_commit_tag_and_its_record_says_so(
    built: Built, scratch: Path
) -> None:
    write_files(
        scratch,
        {
            "environments/clean/environment.yaml": CHILD.format(name="clean"),
            "environments/dirty/environment.yaml": CHILD.format(name="dirty"),
        },
    )
    git("add", "-A", cwd=scratch)
    git("commit", "-qm", "two environments", cwd=scratch)
    commit = git("rev-parse", "HEAD", cwd=scratch)
    (scratch / "environments/dirty/NOTES.md").write_text("not committed\n")
    result = run_envrepo("build", "--push", "--registry", built.registry.host, cwd=scratch)
    assert result.code == 0, result.err
    records = {
        name: json.loads(next((scratch / ".envrepo/builds").glob(f"{name}-*.json")).read_text())
        for name in ("clean", "dirty")
    }
    assert (records["clean"]["dirty"], records["dirty"]["dirty"]) == (False, True)
    assert f"sha-{commit[:12]}" in tags_of(built.registry.host, "clean")
    assert not any(t.startswith("sha-") for t in tags_of(built.registry.host, "dirty"))


def test_a_tests_folder_linked_inside_the_folder_is_mounted_from_where_it_leads(
    built: Built, scratch: Path
) -> None:
    write_files(
        scratch,
        {
            "environments/linked/environment.yaml": CHILD.format(name="linked"),
            "environments/linked/checks/test_here.py": (
                "import os\nprint('found', sorted(os.listdir('/envrepo-tests')))\n"
            ),
        },
    )
    (scratch / "environments/linked/tests").symlink_to("checks")
    result = run_envrepo("build", "--registry", built.registry.host, cwd=scratch)
    assert result.code == 0, result.err
    assert "linked |   found ['test_here.py']" in result.err.splitlines()
    assert "linked | test test_here.py: passed" in result.err.splitlines()


def test_a_bug_with_one_environment_spares_the_others(
    built: Built,
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from envrepo import cli
    from envrepo.image import batch

    write_files(
        scratch,
        {
            "environments/buggy/environment.yaml": CHILD.format(name="buggy"),
            "environments/sound/environment.yaml": CHILD.format(name="sound"),
        },
    )
    real = batch.read_locked

    def read_locked(spec: object, *args: object) -> object:
        if getattr(spec, "name", "") == "buggy":
            raise RuntimeError("boom")
        return real(spec, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "read_locked", read_locked)
    code = cli.run(["-C", str(scratch), "build", "--push", "--registry", built.registry.host])
    err = capsys.readouterr().err.splitlines()
    assert code == 3
    [bug] = [line for line in err if line.startswith("environments/buggy: ")]
    assert bug.startswith("environments/buggy: internal error (RuntimeError: boom); this is a bug")
    assert is_pushed(built.registry.host, "sound")
    assert tags_of(built.registry.host, "buggy") == []


def test_a_base_image_with_another_python_is_refused_at_lock_time_and_by_validate(
    built: Built, make_repo: RepoMaker
) -> None:
    from support import curated_root_image

    client = docker.from_env()
    host = built.registry.host
    container = client.containers.create(curated_root_image(), command=["true"])
    try:
        image = container.commit(
            f"{host}/base/python", "3.11", changes=["ENV PYTHON_VERSION=3.11.2"]
        )
    finally:
        container.remove(force=True)
    try:
        client.images.push(f"{host}/base/python", tag="3.11")
    finally:
        client.images.remove(image.id, force=True)
    root = make_repo("")
    spec = f'name: app\nbase:\n  image: {host}/base/python:3.11\npython: "3.12"\n'
    write_files(root, {"environments/app/environment.yaml": spec})
    mismatch = (
        "environments/app/environment.yaml: python: '3.12' differs from python 3.11.2 of the "
        f"base image {host}/base/python:3.11; make them the same"
    )
    locked = run_envrepo("lock", cwd=root)
    assert locked.code == 2 and mismatch in locked.err.splitlines()
    assert not (root / "environments/app/base-image.lock").exists()
    (root / "environments/app/environment.yaml").write_text(spec.replace("3.12", "3.11"))
    assert run_envrepo("lock", cwd=root).code == 0
    assert "# python: 3.11.2" in (root / "environments/app/base-image.lock").read_text()
    (root / "environments/app/environment.yaml").write_text(spec)
    validated = run_envrepo("validate", cwd=root)
    assert (validated.code, validated.lines[:-1]) == (1, [mismatch])
