"""The publish stages that need no registry: versions assigned from the index, classified
diffs, deprecations, exact package lists checked against the locks, SBOMs, the pages'
escaping, regenerating, and reading an index from a folder or over HTTP."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from envrepo.errors import EnvrepoError
from envrepo.hashing import SpecHash
from envrepo.index import read
from envrepo.index.diff import classify, diff
from envrepo.index.reference import parse
from envrepo.index.store import IndexFolder
from envrepo.lock.locked import Locked, PipEntry
from envrepo.publish import html, publisher, regenerate
from envrepo.publish.index import Deprecation, Release
from envrepo.publish.packages import from_listing
from envrepo.repo.spec import Base, Spec
from support import (
    NOW,
    index_problems,
    release,
    release_packages,
    run_envrepo,
    serve_folder,
    write_files,
)


def publish(folder: Path, *releases: Release, notices: tuple[Deprecation, ...] = ()) -> list:
    return publisher.apply(IndexFolder(folder), releases, notices, NOW).versions


@pytest.mark.parametrize(
    ("ecosystem", "old", "new", "kind"),
    [
        ("pip", "1.2.3", "2.0.0", "major"),
        ("pip", "1.2.3", "1.3.0", "minor"),
        ("pip", "1.2.3", "1.2.4", "patch"),
        ("pip", "1.2.3", "1.2.3.post1", "patch"),
        ("pip", "2.0", "1!1.0", "major"),
        ("apt", "2.36-9+deb12u13", "2.36-9+deb12u14", "patch"),
        ("apt", "1:9.2p1-2", "1:9.3p1-1", "minor"),
        ("apt", "5.2", "1:5.2", "major"),
        ("conda", "2024a", "2024b", "patch"),
        ("conda", "abc", "abd", "other"),
    ],
)
def test_a_change_is_classified_by_the_first_part_that_moved(
    ecosystem: str, old: str, new: str, kind: str
) -> None:
    assert classify(ecosystem, old, new) == kind


def test_the_diff_names_added_removed_and_changed_packages_per_ecosystem() -> None:
    old = release_packages(numpy="1.26.4", pandas="2.2.3", six="1.16.0")
    new = release_packages(numpy="2.0.0", pandas="2.2.3", scipy="1.14.0")
    assert diff(old, new) == {
        "pip": {
            "added": [{"name": "scipy", "to": "1.14.0"}],
            "removed": [{"name": "six", "from": "1.16.0"}],
            "major": [{"name": "numpy", "from": "1.26.4", "to": "2.0.0"}],
        }
    }
    assert diff(new, new) == {}


def test_versions_grow_by_one_per_new_hash_and_a_revert_makes_an_old_one_latest(
    tmp_path: Path,
) -> None:
    first, second = release("env", 1, numpy="1.0.0"), release("env", 2, numpy="1.1.0")
    assert publish(tmp_path, first) == [("env", 1, True)]
    assert publish(tmp_path, first) == [("env", 1, False)]
    assert publish(tmp_path, replace(first, commit="d" * 40)) == [("env", 1, False)]
    assert publish(tmp_path, second) == [("env", 2, True)]
    assert publish(tmp_path, first) == [("env", 1, False)]
    document = json.loads((tmp_path / "environments/env.json").read_text())
    assert document["latest"] == "1"
    assert [r["version"] for r in document["releases"]] == ["1", "2"]
    assert [p["commit"] for p in document["releases"][0]["published"]] == ["c" * 40, "d" * 40]
    assert json.loads((tmp_path / "index.json").read_text())["environments"]["env"]["latest"] == "1"
    # A third hash is version 3, compared with version 2.
    assert publish(tmp_path, release("env", 3, numpy="1.1.1")) == [("env", 3, True)]
    third = json.loads((tmp_path / "environments/env/3/version.json").read_text())
    assert third["diff"] == {"pip": {"patch": [{"name": "numpy", "from": "1.1.0", "to": "1.1.1"}]}}
    assert index_problems(tmp_path) == []


def test_the_registry_is_told_the_version_and_latest_of_each_publish(tmp_path: Path) -> None:
    outcome = publisher.apply(IndexFolder(tmp_path), [release("env", 1)], (), NOW)
    assert outcome.tags == [("env", f"sha256:{1:064x}", ["1", "latest"])]


def test_deprecations_reach_the_index(tmp_path: Path) -> None:
    publish(tmp_path, release("old", 1), release("other", 2))
    notices = (
        Deprecation("old", None, "unmaintained", "other@1", "2026-11-30"),
        Deprecation("other", 1, "has a CVE", None, "2026-11-30"),
    )
    publish(tmp_path, notices=notices)
    top = json.loads((tmp_path / "index.json").read_text())["environments"]
    assert top["old"]["deprecation"]["replacement"] == "other@1"
    assert top["other"]["deprecation"] is None
    old = json.loads((tmp_path / "environments/old.json").read_text())
    assert old["deprecationMessage"] == "unmaintained; use other@1 instead"
    other = json.loads((tmp_path / "environments/other.json").read_text())
    assert [r["isDeprecated"] for r in other["releases"]] == [True]
    assert "has a CVE" in (tmp_path / "environments/other.html").read_text()
    assert index_problems(tmp_path) == []


def test_deprecate_records_into_the_repository(make_repo, tmp_path: Path) -> None:
    root = make_repo()
    write_files(
        root,
        {
            "environments/team-a/environment.yaml": (
                'name: team-a\nbase:\n  image: debian:12\npython: "3.11"\nuser_managed: true\n'
            )
        },
    )
    done = run_envrepo(
        "deprecate", "team-a@2", "--reason", 'old: "numpy" 1', "--replacement", "team-a@3", cwd=root
    )
    assert done.code == 0, done.err
    written = (root / "deprecations/team-a.yaml").read_text()
    assert '- version: 2\n  reason: "old: \\"numpy\\" 1"\n  replacement: "team-a@3"\n' in written
    wrong = run_envrepo("deprecate", "team-a", "--reason", "x", "--replacement", "b", cwd=root)
    assert (wrong.code, wrong.err.strip()) == (2, "--replacement: 'b' is not NAME@VERSION")
    unknown = run_envrepo("deprecate", "nope@1", "--reason", "x", cwd=root)
    assert unknown.code == 2
    assert unknown.err.startswith("nope@1: is not NAME or NAME@VERSION of an environment here")


def _locked(tmp_path: Path, *entries: PipEntry) -> Locked:
    spec = Spec("env", tmp_path, "environments/env", Base("image", "debian:12"), "3.11")
    spec_hash = SpecHash("env", "0" * 64, {}, {}, None, None)
    return Locked(spec, spec_hash, None, pip=entries, pip_lock="environments/env/requirements.lock")


def test_the_package_list_is_what_the_image_has_and_the_lock_says(tmp_path: Path) -> None:
    locked = _locked(tmp_path, PipEntry("Pandas", "3.1.1", ("sha256:" + "a" * 64,), ""))
    listing = {
        "apt": {"bash": ["5.2", None]},
        "conda": {},
        "pip": {"pandas": ["3.1.1", "BSD-3-Clause"]},
    }
    found = from_listing(listing, locked)
    assert found["pip"]["pandas"] == {
        "version": "3.1.1",
        "purl": "pkg:pypi/pandas@3.1.1",
        "license": "BSD-3-Clause",
        "hashes": ["sha256:" + "a" * 64],
    }
    assert found["apt"]["bash"]["purl"] == "pkg:deb/debian/bash@5.2"
    with pytest.raises(EnvrepoError) as other:
        from_listing({**listing, "pip": {"pandas": ["3.1.0", None]}}, locked)
    assert other.value.lines == (
        "environments/env/requirements.lock: pandas: locked at 3.1.1 but is 3.1.0 in the image; "
        "build the environment again from its lock",
    )
    with pytest.raises(EnvrepoError) as missing:
        from_listing({**listing, "pip": {}}, locked)
    assert "pandas: locked at 3.1.1 but is not installed" in missing.value.lines[0]


def test_the_sbom_is_valid_cyclonedx_with_purls_hashes_and_licences(tmp_path: Path) -> None:
    entry = release("env", 1, numpy="2.0.0")
    entry.packages["pip"]["numpy"].update(license="BSD-3-Clause", hashes=["sha256:" + "b" * 64])
    publish(tmp_path, entry)
    text = (tmp_path / "environments/env/1/sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    components = {c["bom-ref"]: c for c in json.loads(text)["components"]}
    numpy = components["pkg:pypi/numpy@2.0.0"]
    assert numpy["hashes"] == [{"alg": "SHA-256", "content": "b" * 64}]
    assert numpy["licenses"] == [{"license": {"id": "BSD-3-Clause"}}]
    assert components["base:image:debian"]["type"] == "container"


def test_a_private_wheel_is_its_file_in_the_sbom_never_the_public_project_of_its_name(
    tmp_path: Path,
) -> None:
    private = "c" * 64
    locked = _locked(tmp_path, PipEntry("acme", "0.1.0", (f"sha256:{private}",), ""))
    listing = {
        "apt": {},
        "conda": {"acme": ["0.1.0", "MIT"]},
        "pip": {"acme": ["0.1.0", None], "six": ["1.17.0", "MIT"]},
    }
    found = from_listing(listing, locked, private={"acme": private})
    assert found["pip"]["acme"]["purl"] == f"pkg:generic/acme@0.1.0?checksum=sha256:{private}"
    assert found["pip"]["six"]["purl"] == "pkg:pypi/six@1.17.0"
    # A base's private wheel in a child's image: the child's lock has no hash of it.
    inherited = from_listing(listing, _locked(tmp_path), private={"acme": private})
    assert inherited["pip"]["acme"]["hashes"] == [f"sha256:{private}"]
    entry = replace(release("env", 1), packages=found)
    publish(tmp_path, entry)
    text = (tmp_path / "environments/env/1/sbom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    acmes = [c for c in json.loads(text)["components"] if c["name"] == "acme"]
    assert sorted(c["purl"] for c in acmes) == [
        "pkg:conda/acme@0.1.0",
        f"pkg:generic/acme@0.1.0?checksum=sha256:{private}",
    ]
    assert "pkg:pypi/acme" not in text


PAYLOAD = '<script>document.title="pwned"</script><img src=x onerror="alert(1)">'


def test_every_text_reaches_the_page_escaped_and_only_web_links_are_links(tmp_path: Path) -> None:
    hostile = replace(
        release("env", 1, **{"numpy": "1.0"}),
        description=PAYLOAD,
        labels={"x": PAYLOAD},
        subject=PAYLOAD,
    )
    hostile.packages["pip"][PAYLOAD] = {"version": PAYLOAD, "purl": "pkg:pypi/x@1"}
    publish(tmp_path, hostile)
    page = (tmp_path / "environments/env.html").read_text()
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page
    assert html.web_link("javascript:alert(1)") is None
    assert html.web_link("https://example.test/x") == "https://example.test/x"


def test_regenerating_gives_the_same_index(tmp_path: Path) -> None:
    publish(tmp_path, release("a", 1, numpy="1.0.0"), release("b", 2))
    publish(tmp_path, release("a", 3, numpy="1.1.0"))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".lock"}
    (tmp_path / "environments/a.html").unlink()
    assert regenerate.regenerate(IndexFolder(tmp_path)) == 3
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".lock"}
    assert after == before


def test_an_index_is_read_from_a_folder_or_over_http_with_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(tmp_path / "index", release("env", 1, numpy="1.0.0"))
    assert read.listing(read.Index(str(tmp_path / "index")))[0] == [["env", "1", "1", "for tests"]]
    assert (
        read.version(read.Index((tmp_path / "index").as_uri()), parse("env@1")).entry["number"] == 1
    )
    with pytest.raises(EnvrepoError, match="no such folder"):
        read.Index(str(tmp_path / "nowhere")).top()
    with pytest.raises(EnvrepoError, match="ftp: is not a kind of location"):
        read.Index("ftp://host/index")
    with serve_folder(tmp_path / "index", authorization="Bearer s3cret") as url:
        monkeypatch.delenv(read.AUTHORIZATION, raising=False)
        with pytest.raises(EnvrepoError) as refused:
            read.Index(url).top()
        assert refused.value.lines == (
            f"--index {url}/index.json: HTTP 401 Unauthorized; "
            f"set {read.AUTHORIZATION} or a ~/.netrc entry for the host",
        )
        monkeypatch.setenv(read.AUTHORIZATION, "Bearer s3cret")
        index = read.Index(url)
        assert read.version(index, parse("env")).entry["digest"] == f"sha256:{1:064x}"
        assert 0 < index.fetched < 64_000
    with serve_folder(tmp_path / "index", authorization="Basic dTpw") as url:
        monkeypatch.delenv(read.AUTHORIZATION)
        netrc = Path.home() / ".netrc"
        netrc.write_text("machine 127.0.0.1 login u password p\n")
        netrc.chmod(0o600)
        assert read.Index(url).top()["environments"]["env"]["latest"] == "1"
