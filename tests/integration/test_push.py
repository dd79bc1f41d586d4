"""envrepo's own push: blobs from its layer cache, uploaded while the tests run, tags last."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from registries import RecordingProxy, serving
from support import CHILD, Built, envrepo_command, run_envrepo, tags_of, write_files


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
    assert again.code == 0, again.err[-2000:]
    assert {"latest"} < set(tags_of(host, name))
    assert any(tag.startswith("t-") for tag in tags_of(host, name))
