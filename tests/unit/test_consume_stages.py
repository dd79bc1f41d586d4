"""The consumer's stages that need no registry: which release a pin reference names, the
lock file read strictly, resolve from a pin or the index, and download's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envrepo.consume import fetch, lockfile
from envrepo.consume.pins import pin
from envrepo.errors import EnvrepoError
from envrepo.index import reference
from envrepo.index.reference import parse
from support import GOOD, published, snapshot


def test_a_reference_names_a_version_a_commit_a_hash_or_a_digest(tmp_path: Path) -> None:
    document = published(tmp_path, snapshot(GOOD)).environment("env")
    digest = document["releases"][0]["digest"]
    for text, number in [
        ("env", 2),
        ("env@latest", 2),
        ("env@1", 1),
        ("env@sha-aaaaaaa", 1),
        (f"env@h-{2:064x}"[:20], 2),
        (f"env@{digest}", 1),
    ]:
        wanted = parse(text)
        assert reference.release(document, wanted)["number"] == number, text
        # Written back as it was given, so that a message names what the user wrote.
        assert str(wanted) == text
    with pytest.raises(EnvrepoError, match="env@7: no such version; env has 1, 2"):
        reference.release(document, parse("env@7"))
    for bad in ("env@0", "env@sha-zz", "env@h-12", "Env@1", "env@", "@1", "env@sha256:ab"):
        with pytest.raises(EnvrepoError) as said:
            parse(bad)
        assert said.value.lines == (
            f"{bad}: is not NAME, NAME@VERSION, NAME@latest, NAME@sha-COMMIT, NAME@h-HASH "
            "or NAME@sha256:DIGEST",
        )


def test_pins_are_written_and_read_back_strictly(tmp_path: Path) -> None:
    index = published(tmp_path / "index", snapshot(GOOD))
    pins, made = pin(lockfile.Pins(), index, parse("env@1"))
    lockfile.write(tmp_path, pins)
    assert lockfile.read(tmp_path).pins["env"] == made
    assert fetch.resolve(pins, parse("env"), None) == made.image
    assert fetch.resolve(pins, parse("env@2"), index) == f"registry.test/env@sha256:{2:064x}"
    with pytest.raises(EnvrepoError, match="is not pinned here; pass --index"):
        fetch.resolve(lockfile.Pins(), parse("other"), None)
    (tmp_path / "envrepo.lock").write_text("{")
    with pytest.raises(EnvrepoError, match=r"envrepo\.lock: is not JSON"):
        lockfile.read(tmp_path)
    (tmp_path / "envrepo.lock").write_text(json.dumps({"format": 1, "pins": {"env": {}}}))
    with pytest.raises(EnvrepoError) as wrong:
        lockfile.read(tmp_path)
    assert all(line.startswith("envrepo.lock: pins.env") for line in wrong.value.lines)


def test_download_writes_the_folder_and_refuses_what_leads_out(tmp_path: Path) -> None:
    index = published(tmp_path / "index", snapshot(GOOD))
    written = fetch.download(index, parse("env@1"), tmp_path / "out")
    assert written == ["environment.yaml", "tests/t.py"]
    assert (tmp_path / "out/environment.yaml").read_bytes() == b"name: env\n"
    with pytest.raises(EnvrepoError, match="is not an empty folder"):
        fetch.download(index, parse("env@1"), tmp_path / "out")
    for bad in (
        snapshot({**GOOD, "environments/env/../../escape": b"x"}),
        snapshot(GOOD, link="/etc/passwd"),
    ):
        hostile = published(tmp_path / f"hostile-{len(bad)}", bad)
        with pytest.raises(EnvrepoError, match="the snapshot is refused"):
            fetch.download(hostile, parse("env@1"), tmp_path / f"never-{len(bad)}")
        assert not (tmp_path / f"never-{len(bad)}").exists()
