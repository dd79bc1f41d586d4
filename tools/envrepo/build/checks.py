"""Inside a built image, network off: the environment's smoke tests, what is installed, and
where the base's interpreter is."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from envrepo.engine.docker import Docker, Log
from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.digest import json_sha256
from envrepo.repo.files import cache_dir, write_text
from envrepo.repo.paths import confined_tree
from envrepo.repo.spec import TESTS_DIR, Spec

TESTS_MOUNT = "/envrepo-tests"
# Runs inside the image: every smoke test, then what is installed, as one JSON line.
CHECK_DRIVER = """
import glob, importlib.metadata as m, json, subprocess, sys, time
results = []
for path in sorted(glob.glob('/envrepo-tests/*.py')):
    started = time.monotonic()
    done = subprocess.run([sys.executable, path], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    print(done.stdout, end='', flush=True)
    results.append({'test': path.rsplit('/', 1)[1], 'passed': done.returncode == 0,
                    'exit': done.returncode, 'seconds': round(time.monotonic() - started, 2)})
packages = sorted({d.metadata['Name']: d.version for d in m.distributions()}.items())
print('ENVREPO-RESULT ' + json.dumps({'tests': results, 'packages': packages}))
"""
PYTHON_PROBE = (
    "import os, sys; print(os.path.realpath(sys.executable)); "
    "print('%d.%d.%d' % sys.version_info[:3]); print(sys.implementation.cache_tag)"
)


@dataclass(frozen=True)
class Python:
    """An image's interpreter: its real path, version, and the tag its bytecode files carry
    (None when it writes none)."""

    path: str
    version: str
    cache_tag: str | None


def probe_python(engine: Docker, image: str, command: str) -> Python | None:
    """The interpreter `command` names in `image`, or None when it does not run there. An
    image ID names its content, so the answer is kept and the container starts once."""
    kept = cache_dir("probes") / f"{json_sha256([image, command])}.json"
    if kept.is_file():
        return Python(**json.loads(kept.read_text(encoding="utf-8")))
    code, output = engine.run(image, [command, "-c", PYTHON_PROBE])
    lines = output.split()
    if code != 0 or len(lines) < 3:
        return None
    found = Python(lines[-3], lines[-2], None if lines[-1] == "None" else lines[-1])
    write_text(kept, json.dumps(asdict(found)))
    return found


def check_image(
    engine: Docker, image: str, spec: Spec, log: Log
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Run the environment's tests/*.py inside the image (network off) and read what is
    installed: (test results, packages)."""
    folder = spec.folder / TESTS_DIR
    mounts = {}
    if folder.is_dir():
        # Docker follows a symlink in a mount's source on the host: only the checked, resolved
        # folder is mounted, read-only.
        leaks = list(confined_tree(folder, spec.folder, f"{spec.display}/{TESTS_DIR}"))
        if leaks:
            raise EnvrepoError(*leaks)
        mounts = {str(folder.resolve()): {"bind": TESTS_MOUNT, "mode": "ro"}}
    code, output = engine.run(image, [spec.interpreter, "-c", CHECK_DRIVER], mounts)
    lines = output.splitlines()
    result_lines = [line for line in lines if line.startswith("ENVREPO-RESULT ")]
    for line in lines:
        if not line.startswith("ENVREPO-RESULT "):
            log(f"  {line}")
    if code != 0 or not result_lines:
        raise EnvrepoError(
            Problem(
                spec.display,
                "",
                (
                    f"the image's interpreter {spec.interpreter} could not run the checks (exit {code}); "
                    "check interpreter and user_managed in the spec"
                ),
            )
        )
    found = json.loads(result_lines[-1].removeprefix("ENVREPO-RESULT "))
    for test in found["tests"]:
        verdict = "passed" if test["passed"] else f"FAILED (exit {test['exit']})"
        log(f"test {test['test']}: {verdict}")
    return list(found["tests"]), dict(found["packages"])
