"""`envrepo init` as a new platform team runs it: a root of its own that `scaffold` builds on
next, a schema copy that `validate` keeps current, and one line where a revision is needed."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from support import PROJECT, git, run_envrepo


def test_a_platform_starts_with_a_root_and_scaffold_builds_on_it(tmp_path: Path) -> None:
    root = tmp_path / "company"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    rev = git("rev-parse", "HEAD", cwd=PROJECT)
    made = run_envrepo(
        "init", "--platform", "--registry", "ghcr.io/acme", "--suite", "trixie", "--root",
        "acme-os", "--hooks-rev", rev, cwd=root,
    )  # fmt: skip
    assert made.code == 0, made.err
    root_spec = yaml.safe_load((root / "environments/acme-os/environment.yaml").read_text())
    assert root_spec["base"]["bootstrap"]["suite"] == "trixie"
    assert (root_spec["python"], root_spec["user_managed"]) == ("3.13", True)
    config = yaml.safe_load((root / "envrepo.yaml").read_text())
    assert config["defaults"] == {"python": "3.13", "base": {"environment": "acme-os"}}
    hooks = yaml.safe_load((root / ".pre-commit-config.yaml").read_text())
    assert hooks["repos"][0]["rev"] == rev

    done = run_envrepo("scaffold", "train", cwd=root)
    assert done.code == 0, done.err
    text = (root / "environments/train/environment.yaml").read_text()
    assert text.startswith(
        "# yaml-language-server: $schema=../../.envrepo-schemas/environment.schema.json\n"
    )
    assert yaml.safe_load(text)["base"] == {"environment": "acme-os"}
    # The schema the comment names is the installed envrepo's; validate keeps it so.
    copy = root / ".envrepo-schemas/environment.schema.json"
    shipped = (PROJECT / "tools/envrepo/repo/schemas/environment.schema.json").read_text()
    assert copy.read_text() == shipped
    copy.write_text(json.dumps({"title": "an older envrepo's"}))
    checked = run_envrepo("validate", cwd=root)
    assert checked.code == 0, checked.err
    assert checked.err.startswith(".envrepo-schemas/environment.schema.json: updated to envrepo ")
    assert copy.read_text() == shipped
    again = run_envrepo("validate", cwd=root)
    assert (again.code, again.err) == (0, "")


def test_a_root_of_another_suite_and_the_refusals(tmp_path: Path) -> None:
    root = tmp_path / "company"
    root.mkdir()
    (root / "envrepo.yaml").write_text("registry: ghcr.io/acme\n")
    made = run_envrepo("scaffold", "os", "--bootstrap", "bookworm", cwd=root)
    assert made.code == 0, made.err
    spec = yaml.safe_load((root / "environments/os/environment.yaml").read_text())
    assert (spec["python"], spec["interpreter"]) == ("3.11", "/usr/bin/python3")
    unknown = run_envrepo("scaffold", "old", "--bootstrap", "jessie", cwd=root)
    assert unknown.code == 2
    assert unknown.err.strip() == (
        "jessie: is not a Debian suite envrepo knows the python of; use one of "
        "bullseye, bookworm, trixie"
    )
    both = run_envrepo("scaffold", "x", "--bootstrap", "bookworm", "--from-pip", "r.txt", cwd=root)
    assert both.code == 2 and "--bootstrap makes a bare root" in both.err
    # A build between releases has no tag: init asks for the revision in one line.
    (tmp_path / "consumer").mkdir()
    bare = run_envrepo("init", "--consumer", cwd=tmp_path / "consumer")
    assert bare.code == 2
    assert "is not a release, so no tag names it; pass --hooks-rev" in bare.err
    assert not (tmp_path / "consumer/envrepo.yaml").exists()
