"""envrepo's own push: blobs from its layer cache, uploaded while the tests run, tags last."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
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


MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def fetch(host: str, path: str, accept: str, method: str = "GET") -> bytes:
    """What a plain registry answers at /v2/`path` (an HTTP error fails the test)."""
    request = urllib.request.Request(
        f"http://{host}/v2/{path}", method=method, headers={"Accept": accept}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())
