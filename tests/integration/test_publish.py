"""Publishing the curated tree that the session built into its registry: versions, the index
read back over HTTP with list, show and diff, a changed pin as version 2, and a publish
without changes that changes no version."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from support import (
    IDENTITY,
    Built,
    commit,
    git,
    index_problems,
    lock_pins,
    manifest_digest,
    run_envrepo,
    serve_folder,
    tags_of,
)

CURATED = ("envrepo-bookworm", "envrepo-minimal", "envrepo-tutorial")


def _clone(built: Built, target: Path) -> Path:
    """A clone of the built repository with its build records: what a CI job has after
    the build job's artifacts are downloaded."""
    git("clone", "-q", str(built.root), str(target), cwd=built.root)
    shutil.copytree(built.root / ".envrepo/builds", target / ".envrepo/builds")
    return target


def test_publish_assigns_versions_and_reads_back_over_http(built: Built, tmp_path: Path) -> None:
    root = _clone(built, tmp_path / "repo")
    index = tmp_path / "index"
    host = built.registry.host
    first = run_envrepo("publish", "--to", index, "--registry", host, cwd=root)
    assert first.code == 0, first.err[-2000:]
    assert f"open {index.resolve() / 'index.html'}" in first.out
    assert index_problems(index) == []
    tutorial = built.record("envrepo-tutorial")
    for name in CURATED:
        digest = str(built.record(name)["digest"])
        assert manifest_digest(host, name, "1") == digest
        assert manifest_digest(host, name, "latest") == digest

    with serve_folder(index) as url:
        listed = run_envrepo("list", "--index", url, cwd=tmp_path)
        assert listed.code == 0, listed.err
        rows = [line.split()[:3] for line in listed.out.splitlines()[1:]]
        assert rows == [[name, "1", "1"] for name in CURATED]

        shown = run_envrepo("show", "envrepo-tutorial@1", "--index", url, "--json", cwd=tmp_path)
        assert shown.code == 0, shown.err
        version = json.loads(shown.out)
        assert version["digest"] == tutorial["digest"]
        assert version["base"]["environment"] == "envrepo-minimal"
        assert version["base"]["digest"] == built.record("envrepo-minimal")["digest"]
        pins = lock_pins(root / "environments/envrepo-tutorial/requirements.lock")
        assert version["packages"]["pip"]["pandas"]["version"] == pins["pandas"]
        assert version["packages"]["pip"]["pandas"]["purl"] == f"pkg:pypi/pandas@{pins['pandas']}"
        assert version["packages"]["pip"]["pandas"]["hashes"]
        assert "python3" in version["packages"]["apt"]

        text = run_envrepo("show", "envrepo-tutorial", "--index", url, cwd=tmp_path)
        assert f"docker pull {tutorial['image'].rsplit(':', 1)[0]}@{tutorial['digest']}" in text.out

        missing = run_envrepo("show", "envrepo-tutorial@7", "--index", url, cwd=tmp_path)
        assert (missing.code, missing.err.strip()) == (
            2,
            "envrepo-tutorial@7: no such version; envrepo-tutorial has 1",
        )

    # The SBOM names every package with its purl, and the folder is the folder as committed.
    sbom = json.loads((index / "environments/envrepo-tutorial/1/sbom.cdx.json").read_text())
    purls = {c.get("purl") for c in sbom["components"]}
    assert f"pkg:pypi/pandas@{pins['pandas']}" in purls
    with tarfile.open(index / "environments/envrepo-tutorial/1/folder.tar.gz") as snapshot:
        names = snapshot.getnames()
    assert "environments/envrepo-tutorial/requirements.lock" in names

    # One pin changes: a new hash, version 2, and the change in its diff.
    requirements = root / "environments/envrepo-tutorial/requirements.txt"
    requirements.write_text(requirements.read_text().replace("pandas==3.1.1", "pandas==3.1.0"))
    locked = run_envrepo("lock", "envrepo-tutorial", cwd=root)
    assert locked.code == 0, locked.err[-2000:]
    commit(root, "tutorial: pandas 3.1.0")
    rebuilt = run_envrepo("build", "envrepo-tutorial", "--push", "--registry", host, cwd=root)
    assert rebuilt.code == 0, rebuilt.err[-3000:]
    second = run_envrepo("publish", "--to", index, "--registry", host, cwd=root)
    assert second.code == 0, second.err[-2000:]
    assert "envrepo-tutorial: version 2 (new)" in second.err
    assert index_problems(index) == []

    with serve_folder(index) as url:
        changed = run_envrepo("diff", "envrepo-tutorial@2", "--index", url, "--json", cwd=tmp_path)
        assert changed.code == 0, changed.err
        assert json.loads(changed.out)["diff"] == {
            "pip": {"patch": [{"name": "pandas", "from": "3.1.1", "to": "3.1.0"}]}
        }
        said = run_envrepo(
            "diff", "envrepo-tutorial@1", "envrepo-tutorial@2", "--index", url, cwd=tmp_path
        )
        assert said.out.splitlines()[0] == "envrepo-tutorial@1 → envrepo-tutorial@2: pip: 1 patch"
        listed = run_envrepo("list", "--index", url, cwd=tmp_path)
        assert [line.split()[:3] for line in listed.out.splitlines()[1:]] == [
            ["envrepo-bookworm", "1", "1"],
            ["envrepo-minimal", "1", "1"],
            ["envrepo-tutorial", "2", "2"],
        ]
    assert "2" in tags_of(host, "envrepo-tutorial")
    assert manifest_digest(host, "envrepo-tutorial", "latest") == manifest_digest(
        host, "envrepo-tutorial", "2"
    )

    # The same state again: no version number changes, none is added.
    before = {n: json.loads((index / f"environments/{n}.json").read_text()) for n in CURATED}
    again = run_envrepo("publish", "--to", index, "--registry", host, cwd=root)
    assert again.code == 0, again.err[-2000:]
    after = {n: json.loads((index / f"environments/{n}.json").read_text()) for n in CURATED}
    for name in CURATED:
        assert [r["number"] for r in after[name]["releases"]] == [
            r["number"] for r in before[name]["releases"]
        ]
        assert after[name]["latest"] == before[name]["latest"]

    # A revert publishes no new number: version 1 is latest again, here and in the registry.
    git(*IDENTITY, "revert", "--no-edit", "HEAD", cwd=root)
    reverted = run_envrepo("publish", "--to", index, "--registry", host, cwd=root)
    assert reverted.code == 0, reverted.err[-2000:]
    assert "envrepo-tutorial: version 1 (published before; latest)" in reverted.err
    document = json.loads((index / "environments/envrepo-tutorial.json").read_text())
    assert (document["latest"], len(document["releases"])) == ("1", 2)
    assert len(document["releases"][0]["published"]) == 2  # first publish, and the revert
    assert manifest_digest(host, "envrepo-tutorial", "latest") == tutorial["digest"]
    assert index_problems(index) == []
