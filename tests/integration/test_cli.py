"""The commands on this repository's curated tree and on scratch repositories."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from support import (
    PROJECT,
    RepoMaker,
    git,
    run_envrepo,
    run_on_terminal,
    write_files,
    write_fresh_lock,
)

CURATED = ["envrepo-bookworm", "envrepo-minimal", "envrepo-tutorial"]


def test_curated_tree_validates_clean(curated_copy: Path) -> None:
    result = run_envrepo("validate", "--strict", cwd=curated_copy)
    assert (result.code, result.out, result.err) == (0, "", "")


def test_curated_tree_hashes_parents_first(curated_copy: Path) -> None:
    result = run_envrepo("hash", cwd=curated_copy)
    assert result.code == 0, result.err
    names = [line.split("  ")[1] for line in result.out.splitlines()]
    digests = [line.split("  ")[0] for line in result.out.splitlines()]
    assert names == CURATED
    # Each printed hash is the sha256 of the canonical JSON of what `hash --json` says went
    # into it, and a child's inputs carry its parent's printed hash.
    detailed = json.loads(run_envrepo("hash", "--json", cwd=curated_copy).out)
    for printed, item in zip(digests, detailed, strict=True):
        canonical = json.dumps(item["inputs"], sort_keys=True, separators=(",", ":"))
        assert printed == item["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert [item["inputs"]["parent"] for item in detailed[1:]] == [
        {"name": name, "hash": digest}
        for name, digest in zip(names[:-1], digests[:-1], strict=True)
    ]
    again = run_envrepo("-C", curated_copy, "hash", cwd=PROJECT.parent)
    assert again.out == result.out


def test_render_names_the_parent_image_in_the_registry_builds_use(curated_copy: Path) -> None:
    hashes = run_envrepo("hash", "envrepo-minimal", cwd=curated_copy).out.split()
    minimal = dict(zip(hashes[1::2], hashes[0::2], strict=True))["envrepo-minimal"]
    result = run_envrepo("render", "envrepo-tutorial", cwd=curated_copy)
    assert result.code == 0, result.err
    assert f"FROM localhost:5000/envrepo-minimal:h-{minimal[:12]}" in result.out.splitlines()
    # The registry a CI job sets for `plan` and `build` is the one the rendered text names.
    result = run_envrepo(
        "render",
        "envrepo-tutorial",
        cwd=curated_copy,
        env={"ENVREPO_REGISTRY": "registry.example.invalid:5000"},
    )
    assert f"FROM registry.example.invalid:5000/envrepo-minimal:h-{minimal[:12]}" in (
        result.out.splitlines()
    )


def test_list_json_describes_every_environment(curated_copy: Path) -> None:
    result = run_envrepo("list", "--json", cwd=curated_copy)
    assert result.code == 0, result.err
    listed = {item["name"]: item for item in json.loads(result.out)}
    assert sorted(listed) == CURATED
    tutorial = listed["envrepo-tutorial"]
    assert tutorial["base"] == {"kind": "environment", "value": "envrepo-minimal"}
    assert tutorial["python"] == "3.11"
    assert tutorial["curated"] is True
    assert tutorial["inputs"] == {"pip": "requirements.txt"}
    assert tutorial["locks"] == {"requirements.lock": "fresh"}
    hashes = run_envrepo("hash", "envrepo-tutorial", cwd=curated_copy).out.split()[0]
    assert tutorial["hash"] == hashes
    root = listed["envrepo-bookworm"]["base"]
    assert root["bootstrap"]["suite"] == "bookworm"


def test_list_plain_is_an_aligned_table(curated_copy: Path) -> None:
    result = run_envrepo("list", cwd=curated_copy)
    lines = result.out.splitlines()
    assert lines[0].split() == ["NAME", "BASE", "PYTHON", "CURATED", "HASH", "INPUTS"]
    assert [line.split()[0] for line in lines[1:]] == CURATED
    column = lines[0].index("PYTHON")
    assert all(line[column : column + 4] == "3.11" for line in lines[1:])


def test_list_on_a_terminal_is_a_rich_table(curated_copy: Path) -> None:
    code, screen = run_on_terminal(["list"], curated_copy)
    assert code == 0
    assert "\x1b[1m" in screen  # the bold header a person sees
    for name in CURATED:
        assert name in screen


def test_show_prints_every_field(curated_copy: Path) -> None:
    result = run_envrepo("show", "envrepo-tutorial", cwd=curated_copy)
    assert result.code == 0, result.err
    shown = dict(line.split(":", 1) for line in result.out.splitlines())
    assert shown["base"].strip() == "environment:envrepo-minimal"
    assert shown["locks"].strip() == "requirements.lock (fresh)"
    assert shown["variables"].strip() == "OMP_NUM_THREADS=1, MPLBACKEND=Agg"
    as_json = json.loads(run_envrepo("show", "envrepo-tutorial", "--json", cwd=curated_copy).out)
    assert as_json["hash"] == shown["hash"].strip()


def test_show_with_a_version_reads_the_repository_s_index(curated_copy: Path) -> None:
    result = run_envrepo("show", "envrepo-tutorial@3", cwd=curated_copy)
    assert (result.code, result.err.strip()) == (
        2,
        f"--index {curated_copy.resolve() / 'index'}: no such folder; give the folder publish wrote",
    )


def test_validate_reports_every_environment_in_one_run(make_repo: RepoMaker) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/one/environment.yaml": "name: one\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\npython: 3.10\n",
            "environments/two/environment.yaml": "name: two\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\nplatfroms: []\n",
            "environments/three/environment.yaml": "name: three\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\n",
        },
    )
    result = run_envrepo("validate", cwd=root)
    assert result.code == 1
    assert result.out.splitlines() == [
        "environments/one/environment.yaml: python: 3.10 is read by YAML as the number 3.1; "
        'quote it: "3.10"',
        "environments/two/environment.yaml: platfroms: unknown field; remove it "
        "(did you mean 'platforms'?)",
    ]
    assert result.err == "envrepo validate: 2 errors, 0 warnings in 3 environments\n"
    only_three = run_envrepo("validate", "environments/three/environment.yaml", cwd=root)
    assert (only_three.code, only_three.out) == (0, "")


def test_warnings_pass_unless_strict(make_repo: RepoMaker) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": "name: app\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\npip: r.txt\n",
            "environments/app/r.txt": "numpy>=1.26\n",
        },
    )
    assert run_envrepo("lock", "--check", cwd=root).code == 1
    write_fresh_lock(root, "app", "numpy==2.0.0\n")
    assert run_envrepo("lock", "--check", cwd=root).code == 0
    relaxed = run_envrepo("validate", cwd=root)
    assert relaxed.code == 0
    assert relaxed.out == (
        "environments/app: warning: 1 input is not pinned to one version (numpy); "
        "r.lock pins them, and a re-lock may move them: review the lock's diff, or "
        "pin them with == in the input\n"
    )
    strict = run_envrepo("validate", "--strict", cwd=root)
    assert (strict.code, strict.out) == (1, relaxed.out)


def test_repository_found_from_a_subfolder_and_by_git_root(make_repo: RepoMaker) -> None:
    root = make_repo("")
    write_files(
        root,
        {
            "environments/app/environment.yaml": "name: app\nbase: {image: x@sha256:abababababababababababababababababababababababababababababababab}\n"
        },
    )
    inner = root / "environments/app"
    assert run_envrepo("list", cwd=inner).out.splitlines()[1].startswith("app ")
    (root / "envrepo.yaml").unlink()
    assert run_envrepo("list", cwd=inner).out.splitlines()[1].startswith("app ")


def test_outside_any_repository(tmp_path: Path) -> None:
    result = run_envrepo("list", cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith(f"{tmp_path}: not inside an environment repository")


def test_a_bug_is_one_line_with_the_traceback_in_the_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from envrepo import cli

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr("envrepo.validate.load_catalog", broken)
    assert cli.run(["-C", str(PROJECT), "validate"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "internal error (RuntimeError: boom)" in err
    log = (tmp_path / "state/envrepo/envrepo.log").read_text()
    assert "Traceback" in log and "boom" in log


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from envrepo import cli

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("envrepo.validate.load_catalog", interrupted)
    assert cli.run(["-C", str(PROJECT), "validate"]) == 130
    assert capsys.readouterr().err.strip() == "envrepo: interrupted"


def test_plan_since_a_git_ref_lists_what_changed_and_what_is_built_on_it(
    make_repo: RepoMaker,
) -> None:
    root = make_repo("")
    digest = "sha256:" + "ab" * 32
    write_files(
        root,
        {
            "environments/root/environment.yaml": f"name: root\nbase: {{image: x@{digest}}}\n",
            "environments/mid/environment.yaml": "name: mid\nbase: {environment: root}\n",
            "environments/leaf/environment.yaml": "name: leaf\nbase: {environment: mid}\n",
            "environments/other/environment.yaml": f"name: other\nbase: {{image: y@{digest}}}\n",
        },
    )
    git("add", "-A", cwd=root)
    git("commit", "-qm", "environments", cwd=root)
    unchanged = run_envrepo("plan", "--since", "HEAD", "--format", "json", cwd=root)
    assert (unchanged.code, json.loads(unchanged.out)) == (0, [])
    (root / "environments/mid/environment.yaml").write_text(
        "name: mid\nbase: {environment: root}\nvariables: {A: '1'}\n"
    )
    write_files(
        root, {"environments/new/environment.yaml": "name: new\nbase: {environment: root}\n"}
    )
    planned = run_envrepo("plan", "--since", "HEAD", "--format", "json", cwd=root)
    assert [(p["name"], p["wave"], p["reason"]) for p in json.loads(planned.out)] == [
        ("mid", 0, "changed since the ref"),
        ("new", 0, "new since the ref"),
        ("leaf", 1, "changed since the ref"),  # its hash holds its base's
    ]
    bad = run_envrepo("plan", "--since", "no-such-ref", cwd=root)
    assert bad.code == 2
    assert bad.err.startswith("--since no-such-ref: ")


def test_sixteen_environments_with_ranges_get_one_warning_each(make_repo: RepoMaker) -> None:
    root = make_repo("")
    ranges = "".join(f"pkg{n}>=1.0\n" for n in range(9)) + "pkg0>=1.0\npkg1<3\nexact==1.0\n"
    for number in range(16):
        name = f"team{number:02d}"
        write_files(
            root,
            {
                f"environments/{name}/environment.yaml": (
                    f"name: {name}\nbase: {{image: x@sha256:{'ab' * 32}}}\npip: r.txt\n"
                ),
                f"environments/{name}/r.txt": ranges,
            },
        )
        write_fresh_lock(root, name, "exact==1.0\n")
    result = run_envrepo("validate", cwd=root)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines == [
        f"environments/team{n:02d}: warning: 9 inputs are not pinned to one version (pkg0, "
        "pkg1, pkg2, pkg3, pkg4, …); r.lock pins them, and a re-lock may move "
        "them: review the lock's diff, or pin them with == in the input"
        for n in range(16)
    ]
    assert result.err == "envrepo validate: 0 errors, 16 warnings in 16 environments\n"


def test_validate_takes_names_and_is_silent_on_success(make_repo: RepoMaker) -> None:
    root = make_repo("")
    image = f"x@sha256:{'ab' * 32}"
    write_files(
        root,
        {
            "environments/good/environment.yaml": f"name: good\nbase: {{image: {image}}}\n",
            "environments/bad/environment.yaml": f"name: bad\nbase: {{image: {image}}}\npip: r.txt\n",
        },
    )
    quiet = run_envrepo("validate", "good", cwd=root)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")
    counted = run_envrepo("validate", "-v", "good", cwd=root)
    assert counted.err == "envrepo validate: 0 errors, 0 warnings in 1 environment\n"
    bad = run_envrepo("validate", "bad", "good", cwd=root)
    assert bad.code == 1
    assert bad.out == (
        "environments/bad/environment.yaml: pip: 'r.txt' does not exist in environments/bad; "
        "create it or fix the path\n"
    )
    assert bad.err == "envrepo validate: 1 error, 0 warnings in 2 environments\n"
    unknown = run_envrepo("validate", "nosuch", cwd=root)
    assert unknown.code == 2
    assert unknown.err == (
        "nosuch: is not inside environments/ nor an environment's name; pass an environment's "
        "name, its folder or a file in one\n"
    )


def test_plan_says_why_an_environment_without_a_lock_is_not_buildable(
    make_repo: RepoMaker,
) -> None:
    root = make_repo("")
    image = f"x@sha256:{'ab' * 32}"
    write_files(root, {"environments/ok/environment.yaml": f"name: ok\nbase: {{image: {image}}}\n"})
    git("add", "-A", cwd=root)
    git("commit", "-qm", "ok", cwd=root)
    write_files(
        root,
        {
            "environments/ok/environment.yaml": (
                f"name: ok\nbase: {{image: {image}}}\nvariables: {{A: '1'}}\n"
            ),
            "environments/app/environment.yaml": (
                f"name: app\nbase: {{image: {image}}}\npip: requirements.txt\n"
            ),
            "environments/app/requirements.txt": "numpy==1.26.4\n",
            "environments/leaf/environment.yaml": "name: leaf\nbase: {environment: app}\n",
        },
    )
    planned = run_envrepo("plan", "--since", "HEAD", "--format", "json", cwd=root)
    assert planned.code == 1
    assert [p["name"] for p in json.loads(planned.out)] == ["ok"]
    assert planned.err.splitlines() == [
        "app: not buildable: environments/app/environment.yaml: pip: requirements.txt has no "
        "lock (requirements.lock is missing); run envrepo lock app",
        "leaf: not buildable: its base app cannot be built",
    ]
