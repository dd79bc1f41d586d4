"""Inside a built image, network off: the environment's smoke tests, what is installed, and
where the base's interpreter is."""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from envrepo.engine.docker import Docker, Log
from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.digest import file_sha256, json_sha256
from envrepo.repo.files import cache_dir, write_text
from envrepo.repo.paths import confined_tree
from envrepo.repo.spec import ENV_PREFIX, TESTS_DIR, Spec

TESTS_MOUNT = "/envrepo-tests"
# Runs inside the image: what is installed, by the package managers' own records: pip's
# dist-info (what conda or dpkg installed left to them), conda's conda-meta, dpkg's status.
# Each entry is [version, licence as the metadata states it, or null].
PACKAGES = r"""
import glob, importlib.metadata as m, json, os
def short(text):
    return text.strip() if text and len(text.strip()) <= 80 and "\n" not in text.strip() else None
pip, conda, apt = {}, {}, {}
for d in m.distributions():
    where = str(d.locate_file(""))
    installer = (d.read_text("INSTALLER") or "").strip()
    if installer == "conda" or where.startswith("/usr/lib/python3/dist-packages"):
        continue
    meta = d.metadata
    pip[meta["Name"]] = [d.version, short(meta.get("License-Expression") or meta.get("License"))]
for path in glob.glob("@PREFIX@/conda-meta/*.json"):
    with open(path, encoding="utf-8") as handle:
        record = json.load(handle)
    conda[record["name"]] = [record["version"], short(record.get("license"))]
if os.path.isfile("/var/lib/dpkg/status"):
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as handle:
        for block in handle.read().split("\n\n"):
            fields = dict(l.split(": ", 1) for l in block.splitlines() if ": " in l and l[0] != " ")
            if fields.get("Status", "").endswith(" installed") and "Package" in fields:
                name = fields["Package"] + (":" + fields["Architecture"] if fields.get("Multi-Arch") == "same" else "")
                apt[name] = [fields.get("Version", ""), None]
print(json.dumps({"envrepo-packages": {"apt": apt, "conda": conda, "pip": pip}}, sort_keys=True))
""".replace("@PREFIX@", ENV_PREFIX)
# Runs inside the image after the listing: the top-level modules of each distribution the
# environment requires itself, by its installed metadata (top_level.txt, else its files),
# each imported by an interpreter of its own, as a program importing it would be (in one
# process, one package's import changes the next one's: pip's turns off setuptools' distutils
# shim), two at a time; the results in a stable order, then a line that says it finished.
IMPORTS = r"""
import concurrent.futures, importlib.metadata as m, json, os, subprocess, sys
wanted, skipped = json.loads(sys.argv.pop(1))
NOT_CODE = {"test", "tests", "testing", "docs", "doc", "examples", "benchmarks", "scripts"}
def tops(dist):
    listed = (dist.read_text("top_level.txt") or "").split()
    found = set(listed)
    if not listed:
        for path in dist.files or ():
            parts = path.parts
            if len(parts) == 1 and parts[0].endswith(".py"):
                found.add(parts[0][:-3])
            elif len(parts) == 1 and parts[0].endswith(".so"):
                found.add(parts[0].split(".")[0])
            elif len(parts) == 2 and parts[1] in ("__init__.py", "__init__.pyc"):
                found.add(parts[0])
    return sorted(n for n in found if n.isidentifier() and n not in NOT_CODE)
def skip(module):
    return any(module == s or module.startswith(s + ".") for s in skipped)
jobs = []
for name in wanted:
    try:
        dist = m.distribution(name)
    except m.PackageNotFoundError:  # not for this platform by its marker, or conda's
        continue
    jobs += [(name, module) for module in tops(dist) if not skip(module)]
def attempt(job):
    done = subprocess.run([sys.executable, "-c", "import " + job[1]], capture_output=True, text=True)
    if done.returncode < 0:
        return "the interpreter died importing it (signal %d)" % -done.returncode
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else "exit %d" % done.returncode
    return None
with concurrent.futures.ThreadPoolExecutor(2) as pool:
    errors = list(pool.map(attempt, jobs))
for (name, module), error in zip(jobs, errors):
    print(json.dumps({"envrepo-imported": [name, module, error]}))
print(json.dumps({"envrepo-imports-done": len(jobs)}), flush=True)
"""
# The listing and the import check, then the first test in its place (exec): one container
# start fewer, the exit status is the test's own, and nothing the test prints can come first.
LIST_THEN_TEST = (
    f"{PACKAGES}\n{IMPORTS}\nimport os; sys.stdout.flush(); os.execv(sys.argv[1], sys.argv[1:])"
)
LIST_AND_IMPORT = f"{PACKAGES}\n{IMPORTS}"
LISTING = "envrepo-packages"
# What is installed: apt / conda / pip → name → [version, licence or None].
Listing = dict[str, dict[str, list[str | None]]]
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


# Runs in the base image: every distribution in a site-packages folder, with its files.
INSTALLED = """
import json, os, sys
site, found = sys.argv[1], {}
for entry in sorted(os.listdir(site)) if os.path.isdir(site) else []:
    record = os.path.join(site, entry, "RECORD")
    if entry.endswith(".dist-info") and os.path.isfile(record):
        with open(record, encoding="utf-8", errors="replace") as handle:
            found[entry] = [line.rsplit(",", 2)[0] for line in handle if line.strip()]
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Installed:
    """A distribution a base image already has in the environment's site-packages: its
    dist-info folder and the files its RECORD lists, as paths in the image."""

    dist_info: str
    version: str
    files: tuple[str, ...]


def installed_in(engine: Docker, image: str, python: Python, site: str) -> dict[str, Installed]:
    """What `image` has installed in `site`, by canonical name (kept, as an image ID names
    its content)."""
    kept = cache_dir("probes") / f"{json_sha256([image, python.path, site, 'installed'])}.json"
    if kept.is_file():
        listing = json.loads(kept.read_text(encoding="utf-8"))
    else:
        code, output = engine.run(image, [python.path, "-I", "-c", INSTALLED, site])
        lines = output.strip().splitlines()
        if code != 0 or not lines:
            raise EnvrepoError(f"the base image's {site} cannot be listed (exit {code})")
        listing = json.loads(lines[-1])
        write_text(kept, json.dumps(listing))
    found: dict[str, Installed] = {}
    for dist_info, records in listing.items():
        name, _, version = dist_info.removesuffix(".dist-info").rpartition("-")
        files = {posixpath.normpath(posixpath.join(site, path)) for path in records}
        inside = sorted(path.lstrip("/") for path in files if path.startswith(ENV_PREFIX + "/"))
        found[canonicalize_name(name)] = Installed(dist_info, version, tuple(inside))
    return found


def _tests_folder(spec: Spec) -> Path:
    """The environment's tests folder, once nothing in it leads out or is no regular file."""
    folder = spec.folder / TESTS_DIR
    leaks = list(confined_tree(folder, spec.folder, f"{spec.display}/{TESTS_DIR}"))
    if leaks:
        raise EnvrepoError(*leaks)
    return folder


def tests_of(spec: Spec) -> list[str]:
    """The smoke tests of `spec`: the names of tests/*.py, in order."""
    folder = _tests_folder(spec)
    return sorted(p.name for p in folder.glob("*.py")) if folder.is_dir() else []


def tests_digest(spec: Spec) -> str:
    """What the verdict on an image's checks depends on besides the image: every file of its
    tests folder, the interpreter they run with, their timeout, and the import check (its
    code and the modules it skips)."""
    folder = _tests_folder(spec)
    files = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                relative = path.relative_to(folder).as_posix()
                shown = f"{spec.display}/{TESTS_DIR}/{relative}"
                files[relative] = file_sha256(path, spec.folder, shown)
    return json_sha256(
        {
            "files": files,
            "interpreter": spec.interpreter,
            "timeout": spec.test_timeout,
            "imports": [IMPORTS, sorted(spec.skip_imports)],
        }
    )


def check_image(
    engine: Docker, image: str, spec: Spec, direct: Collection[str], log: Log
) -> tuple[list[dict[str, Any]], Listing]:
    """Check the image, network off: the top-level modules of the distributions `direct`
    (those the spec requires itself) import, then each of the environment's tests/*.py runs in
    a container of its own (the tests folder mounted read-only), judged by its exit status
    alone and stopped at the spec's timeout; and read what is installed: (test results,
    packages). A module that does not import is an error, and no test runs."""
    folder = _tests_folder(spec)
    tests = tests_of(spec)
    # Docker follows a symlink in a mount's source on the host: only the checked, resolved
    # folder is mounted, read-only.
    mounts = {str(folder.resolve()): {"bind": TESTS_MOUNT, "mode": "ro"}} if tests else {}
    imports = json.dumps([sorted(direct), sorted(spec.skip_imports)])
    packages: Listing | None = None
    results = []
    for name in tests:
        started = time.monotonic()
        command = [spec.interpreter, f"{TESTS_MOUNT}/{name}"]
        if packages is None:
            command = [spec.interpreter, "-c", LIST_THEN_TEST, imports, *command]
        exit_code, output = engine.run_limited(image, command, mounts, spec.test_timeout)
        if packages is None:
            packages, output = _listing(output, spec.display, spec.interpreter, exit_code)
            output = _imported(output, spec.display, exit_code, log)
        for line in output.splitlines():
            log(f"  {line}")
        passed = exit_code == 0
        if exit_code is None:
            verdict = f"FAILED (stopped after {spec.test_timeout} s)"
        else:
            verdict = "passed" if passed else f"FAILED (exit {exit_code})"
        log(f"test {name}: {verdict}")
        results.append(
            {
                "test": name,
                "passed": passed,
                "exit": -1 if exit_code is None else exit_code,
                "timed_out": exit_code is None,
                "seconds": round(time.monotonic() - started, 2),
            }
        )
    if packages is None:
        command = [spec.interpreter, "-c", LIST_AND_IMPORT, imports]
        exit_code, output = engine.run_limited(image, command, {}, spec.test_timeout)
        packages, output = _listing(output, spec.display, spec.interpreter, exit_code)
        _imported(output, spec.display, exit_code, log)
    return results, packages


def _imported(output: str, display: str, code: int | None, log: Log) -> str:
    """The rest of `output` once the import check's lines are read from it; an error naming
    the first distribution whose module did not import, or saying the check did not finish."""
    rest, failed, checked = [], None, None
    for line in output.splitlines(keepends=True):
        try:
            found = json.loads(line)
        except ValueError:
            found = None
        if isinstance(found, dict) and "envrepo-imported" in found:
            name, module, error = found["envrepo-imported"]
            if error is not None and failed is None:
                failed = f"{name}: import {module} fails inside the image: {error}"
        elif isinstance(found, dict) and "envrepo-imports-done" in found:
            checked = found["envrepo-imports-done"]
        else:
            rest.append(line)
    if failed is None and checked is None:
        how = "it was stopped at the test timeout" if code is None else f"exit {code}"
        failed = f"the check that its packages import did not finish ({how})"
    if failed is not None:
        raise EnvrepoError(
            Problem(
                display,
                "",
                (
                    f"{failed}; change the pins (or list the module under skip_imports when it "
                    "cannot be imported at build time)"
                ),
            )
        )
    log(f"imported the top-level modules of the direct packages: {checked} checked")
    return "".join(rest)


def listing(engine: Docker, image: str, interpreter: str, display: str) -> Listing:
    """What `image` has installed, read by `interpreter` in a container of its own."""
    code, output = engine.run(image, [interpreter, "-c", PACKAGES])
    return _listing(output, display, interpreter, code)[0]


def _listing(output: str, display: str, interpreter: str, code: int | None) -> tuple[Listing, str]:
    """What is installed, from the first line of `output` that is the listing, and the rest
    of the output (the test's); an error when the interpreter never printed it."""
    lines = output.splitlines(keepends=True)
    for number, line in enumerate(lines):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get(LISTING), dict):
            return found[LISTING], "".join(lines[:number] + lines[number + 1 :])
    raise EnvrepoError(
        Problem(
            display,
            "",
            (
                f"the image's interpreter {interpreter} could not run the checks "
                f"(exit {code}); check interpreter and user_managed in the spec"
            ),
        )
    )
