"""envrepo's own push: blobs from its layer cache, uploaded while the tests run, tags last."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import signal
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import docker
import docker.errors

from registries import RecordingProxy, requests_logged, serving, start_registry
from support import (
    CHILD,
    Built,
    envrepo_command,
    forget_images,
    make_wheel,
    pushed_tag,
    run_envrepo,
    tags_of,
    with_private_wheel,
    write_files,
)


def test_an_interrupted_push_leaves_no_tag_and_the_next_build_completes_it(
    built: Built, scratch: Path
) -> None:
    host = built.registry.host
    name = "halfway"
    write_files(scratch, {f"environments/{name}/environment.yaml": CHILD.format(name=name)})
    proxy = RecordingProxy(host, hold_uploads=True)
    with serving(proxy.handler(), None) as proxied:
        process = subprocess.Popen(
            [envrepo_command(), "build", name, "--push", "--registry", proxied],
            cwd=scratch,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CI": "true"},
        )
        try:
            assert proxy.held.wait(300), "no blob upload reached the registry"
            process.send_signal(signal.SIGTERM)
        finally:
            proxy.release.set()
        _, err = process.communicate(timeout=120)
        assert process.returncode == 143, err[-2000:]
        assert "Traceback" not in err
        assert tags_of(host, name) == []
        proxy.hold_uploads = False
        again = run_envrepo("build", name, "--push", "--registry", proxied, cwd=scratch)
        forget_images(proxied)
    assert again.code == 0, again.err[-2000:]
    assert any(tag.startswith("h-") for tag in tags_of(host, name))
    assert any(tag.startswith("t-") for tag in tags_of(host, name))


def test_a_second_environment_takes_shared_layers_from_the_registry_with_empty_caches(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    """The second environment shares a package with the first, already pushed: on a machine
    with empty caches it neither makes that layer nor uploads any blob a second time, as the
    registry's own log of the requests it answered shows."""
    shared = make_wheel(tmp_path / "wheels", "sharedpkg", "1.0")
    own = make_wheel(tmp_path / "wheels", "ownpkg", "1.0")
    with_private_wheel(scratch, "first", shared, CHILD.format(name="first"))
    write_files(
        scratch,
        {
            "environments/second/environment.yaml": CHILD.format(name="second")
            + "wheels: wheels\n",
            f"environments/second/wheels/{shared.name}": shared.read_bytes(),
            f"environments/second/wheels/{own.name}": own.read_bytes(),
        },
    )
    assert run_envrepo("lock", "second", cwd=scratch).code == 0
    running = start_registry(tmp_path / "logged", log_requests=True)
    try:
        first = run_envrepo("build", "first", "--push", "--registry", running.host, cwd=scratch)
        assert first.code == 0, first.err[-2000:]
        empty = {"XDG_CACHE_HOME": str(tmp_path / "empty"), "UV_CACHE_DIR": str(tmp_path / "uv")}
        second = run_envrepo(
            "build", "second", "--push", "--registry", running.host, cwd=scratch, env=empty
        )
        logged = requests_logged(running)
    finally:
        running.stop()
        forget_images(running.host)
    assert second.code == 0, second.err[-2000:]
    made = [line for line in second.err.splitlines() if " made  " in line]
    assert any("install ownpkg-1.0" in line for line in made), second.err
    assert not any("install sharedpkg-1.0" in line for line in made), second.err
    assert "1 of 2 layers to make are in the registry already: downloaded" in second.err
    uploads = [
        parse_qs(urlsplit(uri).query)["digest"][0]
        for method, uri in logged
        if method == "PUT" and "/blobs/uploads/" in uri
    ]
    assert any(uri.startswith("/v2/second/") for _, uri in logged)
    assert uploads, "the registry logged the first build's uploads"
    assert sorted(uploads) == sorted(set(uploads)), "a blob was uploaded twice"


def test_a_base_image_from_another_registry_is_copied_registry_to_registry(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    """The base's blobs go from its registry to the environment's, never read back from the
    daemon; the image pushed is whole there."""
    other = built.registry.host
    client = docker.from_env()
    root = str(built.record("envrepo-bookworm")["image"])
    client.images.get(root).tag(f"{other}/base/copied", "1")
    client.images.push(f"{other}/base/copied", tag="1")
    client.images.remove(f"{other}/base/copied:1")
    write_files(
        scratch,
        {
            "environments/copied/environment.yaml": (
                f'name: copied\nbase:\n  image: {other}/base/copied:1\npython: "3.11"\n'
                "user_managed: true\ninterpreter: /usr/bin/python3\n"
            )
        },
    )
    assert run_envrepo("lock", "copied", cwd=scratch).code == 0
    target = start_registry(tmp_path / "target")
    try:
        pushed = run_envrepo("build", "copied", "--push", "--registry", target.host, cwd=scratch)
        assert pushed.code == 0, pushed.err[-2000:]
        assert "from the daemon" not in pushed.err
        manifest = json.loads(
            fetch(target.host, "copied/manifests/" + pushed_tag(scratch, "copied"), MANIFEST_TYPE)
        )
        for layer in manifest["layers"]:
            assert fetch(target.host, f"copied/blobs/{layer['digest']}", "*/*", "HEAD") == b""
    finally:
        target.stop()
        forget_images(target.host)
        for image in client.images.list():
            for name in [*image.tags, *(image.attrs.get("RepoDigests") or [])]:
                if name.startswith(f"{other}/base/copied"):
                    with contextlib.suppress(docker.errors.ImageNotFound):
                        client.images.remove(name)


def test_the_files_a_pushed_image_was_checked_on_are_those_a_pull_of_its_digest_gives(
    built: Built, scratch: Path, tmp_path: Path
) -> None:
    """The image the tests ran in is, file for file and byte for byte, what the registry gives
    for the pushed digest: its blobs, downloaded and unpacked layer by layer with whiteouts
    applied, against the checked image's own file system; and `docker pull` of the digest
    gives that same image."""
    name = "pulled-same"
    wheel = make_wheel(tmp_path / "wheels", "pulledpkg", "1.0", module_text="ANSWER = 42\n")
    with_private_wheel(scratch, name, wheel, CHILD.format(name=name))
    test = "import pulledpkg\nassert pulledpkg.ANSWER == 42\n"
    write_files(scratch, {f"environments/{name}/tests/test_import.py": test})
    host = built.registry.host
    pushed = run_envrepo("build", name, "--push", "--registry", host, cwd=scratch)
    assert pushed.code == 0, pushed.err[-2000:]
    [path] = (scratch / ".envrepo/builds").glob(f"{name}-*.json")
    record = json.loads(path.read_text())
    assert [test["passed"] for test in record["tests"]] == [True]
    checked, digest = record["image_id"], record["digest"]
    client = docker.from_env()
    container = client.containers.create(checked, command=["true"])
    try:
        seen = applied({}, b"".join(container.export()))
    finally:
        container.remove()

    body = fetch(host, f"{name}/manifests/{digest}", MANIFEST_TYPE)
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    manifest = json.loads(body)
    assert manifest["config"]["digest"] == checked, "the pushed config is not the checked image's"
    config = json.loads(blob(host, name, manifest["config"]["digest"]))
    layers = [gzip.decompress(blob(host, name, layer["digest"])) for layer in manifest["layers"]]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    assert diff_ids == config["rootfs"]["diff_ids"]
    pulled: dict[str, Entry] = {}
    for layer in layers:
        applied(pulled, layer)
    assert "/opt/env/lib/python3.11/site-packages/pulledpkg/__init__.py" in pulled

    # The engine's own files in /etc make that folder's modification time the container's.
    seen["/etc"] = seen["/etc"][:4] + pulled["/etc"][4:5] + seen["/etc"][5:]
    differ = sorted(
        path
        for path in seen.keys() | pulled.keys()
        if seen.get(path) != pulled.get(path) and not made_by_docker(path)
    )
    assert differ == [], [(path, seen.get(path), pulled.get(path)) for path in differ[:10]]
    assert client.images.pull(f"{host}/{name}@{digest}").id == checked


# A file system entry: kind, mode, owner, group, modification time and what it holds (a
# file's sha256, a link's target, a device's numbers).
Entry = tuple[str, int, int, int, int, str]
# What the engine puts into every container it makes and into no image (its "init" layer).
DOCKER_MADE = ("/.dockerenv", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab")
DOCKER_MOUNTS = ("/dev", "/proc", "/sys")


def made_by_docker(path: str) -> bool:
    return path in DOCKER_MADE or path in DOCKER_MOUNTS or path.startswith(DOCKER_MOUNTS)


def applied(tree: dict[str, Entry], layer: bytes) -> dict[str, Entry]:
    """`tree` with the layer tar `layer` applied over it, as an overlay does: a `.wh.NAME`
    removes NAME and what is under it, `.wh..wh..opq` empties its folder of what lower
    layers put there."""
    lower = dict(tree)
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as archive:
        for member in archive:
            path = posixpath.normpath("/" + member.name)
            if path == "/":
                continue
            folder, base = posixpath.split(path)
            if base == ".wh..wh..opq":
                for gone in [p for p in lower if p.startswith(folder.rstrip("/") + "/")]:
                    tree.pop(gone, None)
                continue
            if base.startswith(".wh."):
                hidden = posixpath.join(folder, base[4:])
                for gone in [p for p in tree if p == hidden or p.startswith(hidden + "/")]:
                    del tree[gone]
                continue
            if member.islnk():
                kind, held = tree[posixpath.normpath("/" + member.linkname)][::5]
            elif member.isreg():
                handle = archive.extractfile(member)
                assert handle is not None
                held = hashlib.sha256(handle.read()).hexdigest()
                kind = "file"
            elif member.issym():
                kind, held = "symlink", member.linkname
            elif member.isdir():
                kind, held = "dir", ""
            else:
                kind, held = str(member.type), f"{member.devmajor}:{member.devminor}"
            # Docker's own tars carry the type bits in the mode too.
            tree[path] = (
                kind,
                member.mode & 0o7777,
                member.uid,
                member.gid,
                int(member.mtime),
                held,
            )
    return tree


def blob(host: str, name: str, digest: str) -> bytes:
    """A blob of `name` as the registry gives it, checked against its digest."""
    body = fetch(host, f"{name}/blobs/{digest}", "*/*")
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    return body


MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def fetch(host: str, path: str, accept: str, method: str = "GET") -> bytes:
    """What a plain registry answers at /v2/`path` (an HTTP error fails the test)."""
    request = urllib.request.Request(
        f"http://{host}/v2/{path}", method=method, headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())
