"""Publishing safely: two publishes from two processes at once lose no version, and a
publish killed with SIGKILL at any moment leaves an index that reads and validates; into a
folder and into a git branch pushed to a remote. The environments are small ones whose images
are real manifests in a real registry; their build records are written here, as a build
job's artifacts would be."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from envrepo.engine.registry import Upload, connect
from envrepo.hashing import hash_environments
from envrepo.repo.config import open_repository
from envrepo.repo.spec import load_catalog
from registries import RunningRegistry
from support import commit, envrepo_command, git, index_problems, write_files

COUNT = 16
SPEC = (
    'name: {name}\nbase:\n  bootstrap:\n    suite: bookworm\npython: "3.11"\n'
    'user_managed: true\ninterpreter: /usr/bin/python3\nvariables:\n  GENERATION: "{generation}"\n'
)


@dataclass
class Fleet:
    """A repository of COUNT small environments whose images the registry holds."""

    root: Path
    registry: RunningRegistry
    generation: int = 0

    @property
    def names(self) -> list[str]:
        return [f"env{i:02d}" for i in range(COUNT)]

    def next_generation(self) -> Path:
        """Every environment changed (a new spec hash), committed, its image pushed and its
        build record written; the records' folder."""
        self.generation += 1
        write_files(
            self.root,
            {
                f"environments/{name}/environment.yaml": SPEC.format(
                    name=name, generation=self.generation
                )
                for name in self.names
            },
        )
        head = commit(self.root, f"generation {self.generation}")
        catalog = load_catalog(open_repository(self.root, explicit=True)[0])
        hashes = hash_environments(catalog)
        registry = connect(self.registry.host, self.registry.host)
        records = self.root.parent / f"records-{self.generation}"
        records.mkdir()
        for name in self.names:
            config = json.dumps({"env": name, "generation": self.generation}).encode()
            path = records / f".{name}.config"
            path.write_bytes(config)
            blob = Upload(
                "sha256:" + hashlib.sha256(config).hexdigest(),
                len(config),
                path,
                "application/vnd.docker.container.image.v1+json",
            )
            registry.put_blobs(name, [blob])
            tag = f"h-{hashes[name].short}"
            digest = registry.put_manifest(
                name, blob, [], "application/vnd.docker.distribution.manifest.v2+json", [tag]
            )
            record = {
                "name": name,
                "hash": hashes[name].value,
                "status": "built",
                "image": f"{self.registry.host}/{name}:{tag}",
                "digest": digest,
                "tags": [f"{self.registry.host}/{name}:{tag}"],
                "commit": head,
                "dirty": False,
                "base": "bootstrap:bookworm/minbase",
                "packages": {
                    "apt": {"bash": ["5.2.15-2+b7", None]},
                    "conda": {},
                    "pip": {"numpy": [f"2.{self.generation}.0", "BSD-3-Clause"]},
                },
                "platform": "linux/amd64",
                "tests": [],
                "tests_digest": "0" * 64,
                "image_id": None,
                "log": None,
                "durations": {},
                "created": "2026-11-30T04:00:00+00:00",
                "size": None,
            }
            (records / f"{name}-{hashes[name].short}.json").write_text(json.dumps(record))
        return records

    def publish(self, records: Path, *target: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                envrepo_command(),
                "publish",
                "--records",
                str(records),
                "--registry",
                self.registry.host,
                *target,
            ],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def fleet(registry: RunningRegistry, make_repo, tmp_path: Path) -> Fleet:
    root = make_repo(f"registry: {registry.host}\n")
    return Fleet(root, registry)


def _versions(index: Path) -> dict[str, list[int]]:
    top = json.loads((index / "index.json").read_text())
    return {
        name: [r["number"] for r in json.loads((index / entry["document"]).read_text())["releases"]]
        for name, entry in top["environments"].items()
    }


def _finished(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]


def _branch_index(remote: Path, into: Path) -> Path:
    """The index as the remote's branch holds it now, in a fresh clone."""
    git("clone", "-q", "--branch", "pages", str(remote), str(into), cwd=remote)
    return into


TARGETS = ("folder", "branch")


def _target(fleet: Fleet, kind: str) -> tuple[list[str], Path | None]:
    if kind == "folder":
        return ["--to", str(fleet.root.parent / "index")], None
    remote = fleet.root.parent / "remote.git"
    if not remote.exists():
        git("init", "-q", "--bare", str(remote), cwd=fleet.root.parent)
        git("remote", "add", "origin", str(remote), cwd=fleet.root)
    return ["--to-branch", "pages", "--push", "origin"], remote


def _read_index(fleet: Fleet, kind: str, remote: Path | None, name: str) -> Path:
    if remote is None:
        return fleet.root.parent / "index"
    return _branch_index(remote, fleet.root.parent / name)


@pytest.mark.parametrize("kind", TARGETS)
def test_two_publishes_at_once_lose_no_version(fleet: Fleet, kind: str) -> None:
    target, remote = _target(fleet, kind)
    records = fleet.next_generation()
    half = fleet.root.parent / "half"
    half.mkdir()
    for path in sorted(records.glob("*.json"))[: COUNT // 2]:
        path.rename(half / path.name)
    _finished(fleet.publish(records, *target), fleet.publish(half, *target))
    index = _read_index(fleet, kind, remote, "first")
    assert index_problems(index) == []
    assert _versions(index) == {name: [1] for name in fleet.names}

    # The same new versions from two processes at once: each is version 2, once.
    again = fleet.next_generation()
    _finished(fleet.publish(again, *target), fleet.publish(again, *target))
    index = _read_index(fleet, kind, remote, "second")
    assert index_problems(index) == []
    assert _versions(index) == {name: [1, 2] for name in fleet.names}


@pytest.mark.parametrize("kind", TARGETS)
def test_a_publish_killed_at_any_moment_leaves_a_valid_index(fleet: Fleet, kind: str) -> None:
    target, remote = _target(fleet, kind)
    records = fleet.next_generation()
    started = time.monotonic()
    _finished(fleet.publish(records, *target))
    # Moments spread over a whole publish, as long as one takes on this machine.
    whole = time.monotonic() - started
    killed = []
    for number, delay in enumerate(whole * share for share in (0.2, 0.4, 0.6, 0.75, 0.9)):
        process = fleet.publish(fleet.next_generation(), *target)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        killed.append(process.returncode == -signal.SIGKILL)
        index = _read_index(fleet, kind, remote, f"killed-{number}")
        assert index_problems(index) == [], f"killed after {delay:.2f} s"
    assert killed.count(True) >= 4, f"most publishes should die at work: {killed}"
    # The next publish finds what the killed ones left and goes on from there.
    last = fleet.next_generation()
    _finished(fleet.publish(last, *target))
    index = _read_index(fleet, kind, remote, "after")
    assert index_problems(index) == []
    versions = _versions(index)
    assert all(numbers[-1] == len(numbers) >= 2 for numbers in versions.values()), versions
    if remote is None:
        assert not list(index.rglob(".*.tmp-*"))


def _one_line(process: subprocess.Popen[str]) -> str:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_bad_records_and_targets_get_one_line_each(fleet: Fleet, tmp_path: Path) -> None:
    records = fleet.next_generation()
    index = tmp_path / "index"
    first = sorted(records.glob("env00-*.json"))[0]
    good = json.loads(first.read_text())

    first.write_text(json.dumps({**good, "dirty": True}))
    said = _one_line(fleet.publish(records, "--to", str(index)))
    assert said == (
        "environments/env00: was built from files that differ from a commit; "
        "commit them, build and publish again"
    )
    first.write_text(json.dumps({**good, "digest": "sha256:" + "0" * 64}))
    said = _one_line(fleet.publish(records, "--to", str(index)))
    assert said.startswith(f"environments/env00: registry {fleet.registry.host} does not hold ")
    first.write_text(json.dumps({**good, "digest": None}))
    assert "was not pushed" in _one_line(fleet.publish(records, "--to", str(index)))
    first.write_text("{not json")
    assert _one_line(fleet.publish(records, "--to", str(index))) == (
        f"{first}: is not a build record; remove it, build again"
    )
    assert not index.exists() or not (index / "index.json").exists()

    first.write_text(json.dumps(good))
    (tmp_path / "a-file").write_text("")
    said = _one_line(fleet.publish(records, "--to", str(tmp_path / "a-file")))
    assert said.startswith(f"--to {tmp_path / 'a-file'}: is not a folder")
    said = _one_line(fleet.publish(tmp_path / "a-file", "--to", str(index)))
    assert said.startswith(f"--records {tmp_path / 'a-file'}: is not a folder")
    _finished(fleet.publish(records, "--to", str(index)))
    (index / "index.json").write_text("{")
    said = _one_line(fleet.publish(records, "--to", str(index)))
    assert said.startswith(f"{index / 'index.json'}: is not a JSON document of an envrepo index")


def test_a_registry_that_is_gone_gets_one_line(fleet: Fleet, tmp_path: Path) -> None:
    from registries import free_port

    records = fleet.next_generation()
    gone = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            envrepo_command(),
            "publish",
            "--records",
            str(records),
            "--registry",
            gone,
            "--to",
            str(tmp_path / "index"),
        ],
        cwd=fleet.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert gone in _one_line(process)
    assert not (tmp_path / "index/index.json").exists()


def test_a_registry_that_lost_a_published_image_gets_one_line(fleet: Fleet, tmp_path: Path) -> None:
    import urllib.request

    records = fleet.next_generation()
    index = tmp_path / "index"
    _finished(fleet.publish(records, "--to", str(index)))
    [path] = records.glob("env00-*.json")
    record = json.loads(path.read_text())
    lost = record["digest"]
    request = urllib.request.Request(
        f"http://{fleet.registry.host}/v2/env00/manifests/{lost}", method="DELETE"
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 202
    # The same spec built again into the registry that lost it: another image.
    registry = connect(fleet.registry.host, fleet.registry.host)
    config = records / ".env00.rebuilt"
    config.write_bytes(b'{"env": "env00", "rebuilt": true}')
    blob = Upload(
        "sha256:" + hashlib.sha256(config.read_bytes()).hexdigest(),
        config.stat().st_size,
        config,
        "application/vnd.docker.container.image.v1+json",
    )
    registry.put_blobs("env00", [blob])
    tag = record["image"].rsplit(":", 1)[1]
    record["digest"] = registry.put_manifest(
        "env00", blob, [], "application/vnd.docker.distribution.manifest.v2+json", [tag]
    )
    path.write_text(json.dumps(record))
    said = _one_line(fleet.publish(records, "--to", str(index)))
    assert said == (
        f"{fleet.registry.host}/env00: version 1 of the index is the image {lost}, which the "
        "registry no longer has: push that image again, or publish into a new index for this "
        "registry"
    )
    assert index_problems(index) == []
