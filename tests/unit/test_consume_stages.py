"""The consumer's stages that need no registry: which release a pin reference names, the
lock file read strictly, resolve from a pin or the index, and download's refusals."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from envrepo.consume import fetch, lockfile
from envrepo.consume.pins import choose, pin
from envrepo.errors import EnvrepoError
from envrepo.publish import publisher
from envrepo.publish.read import Index
from envrepo.publish.store import IndexFolder
from support import NOW, release


def snapshot(members: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo("environments/env")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("environments/env/link")
            info.type = tarfile.SYMTYPE
            info.linkname = link
            archive.addfile(info)
    return gzip.compress(buffer.getvalue(), mtime=0)


def published(folder: Path, data: bytes) -> Index:
    first = replace(
        release("env", 1, commit="a" * 40, numpy="1.0"),
        folder=data,
        folder_sha256=hashlib.sha256(data).hexdigest(),
    )
    second = replace(
        release("env", 2, commit="b" * 40, numpy="1.1"),
        folder=data,
        folder_sha256=hashlib.sha256(data).hexdigest(),
    )
    publisher.apply(IndexFolder(folder), [first], (), NOW)
    publisher.apply(IndexFolder(folder), [second], (), NOW)
    return Index(str(folder))


GOOD = {"environments/env/environment.yaml": b"name: env\n", "environments/env/tests/t.py": b"1\n"}


def test_a_reference_names_a_version_a_commit_or_a_hash(tmp_path: Path) -> None:
    document = published(tmp_path, snapshot(GOOD)).environment("env")
    assert choose(document, "env")["number"] == 2
    assert choose(document, "env@1")["number"] == 1
    assert choose(document, "env@sha-aaaaaaa")["number"] == 1
    assert choose(document, f"env@h-{2:064x}"[:20])["number"] == 2
    with pytest.raises(EnvrepoError, match="names no version of env; it has 1, 2"):
        choose(document, "env@7")
    with pytest.raises(EnvrepoError, match="is not NAME, NAME@VERSION"):
        choose(document, "env@latest")


def test_pins_are_written_and_read_back_strictly(tmp_path: Path) -> None:
    index = published(tmp_path / "index", snapshot(GOOD))
    pins, made = pin(lockfile.Pins(), index, "env@1")
    lockfile.write(tmp_path, pins)
    assert lockfile.read(tmp_path).pins["env"] == made
    assert fetch.resolve(pins, "env", None) == made.image
    assert fetch.resolve(pins, "env@2", index) == f"registry.test/env@sha256:{2:064x}"
    with pytest.raises(EnvrepoError, match="is not pinned here; pass --index"):
        fetch.resolve(lockfile.Pins(), "other", None)
    (tmp_path / "envrepo.lock").write_text("{")
    with pytest.raises(EnvrepoError, match=r"envrepo\.lock: is not JSON"):
        lockfile.read(tmp_path)
    (tmp_path / "envrepo.lock").write_text(json.dumps({"format": 1, "pins": {"env": {}}}))
    with pytest.raises(EnvrepoError) as wrong:
        lockfile.read(tmp_path)
    assert all(line.startswith("envrepo.lock: pins.env") for line in wrong.value.lines)


def test_download_writes_the_folder_and_refuses_what_leads_out(tmp_path: Path) -> None:
    index = published(tmp_path / "index", snapshot(GOOD))
    written = fetch.download(index, "env@1", tmp_path / "out")
    assert written == ["environment.yaml", "tests/t.py"]
    assert (tmp_path / "out/environment.yaml").read_bytes() == b"name: env\n"
    with pytest.raises(EnvrepoError, match="is not an empty folder"):
        fetch.download(index, "env@1", tmp_path / "out")
    for bad in (
        snapshot({**GOOD, "environments/env/../../escape": b"x"}),
        snapshot(GOOD, link="/etc/passwd"),
    ):
        hostile = published(tmp_path / f"hostile-{len(bad)}", bad)
        with pytest.raises(EnvrepoError, match="the snapshot is refused"):
            fetch.download(hostile, "env@1", tmp_path / f"never-{len(bad)}")
        assert not (tmp_path / f"never-{len(bad)}").exists()
