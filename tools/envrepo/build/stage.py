"""The locked packages installed on the host for the image's target.

Each entry of the pip lock gets the cache key of the layer it makes, known before anything is
installed (its hashes name its files); only the entries whose layer is not made yet are
installed. uv installs the lock's files, hash-checked, from its content-addressed cache
(shared by every environment and run) into a staging folder; no container reaches a package
index, and no wheel file goes into a layer.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from envrepo.build.bytecode import POLICY, Job, wanted
from envrepo.build.layers import LAYER_FORMAT, Package, image_path, in_site
from envrepo.build.render import ENV_PREFIX
from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs.requirements import is_exact
from envrepo.lock import files as lock
from envrepo.lock.pip import PLATFORM_TAGS, entries, tool_version, uv
from envrepo.repo.digest import json_sha256
from envrepo.repo.spec import Spec

_HASH = re.compile(r"--hash=(\S+)")


@dataclass(frozen=True)
class Locked(Package):
    """One distribution of the pip lock: its entry, hashes included, and the lock it is from,
    as shown to users."""

    text: str
    source: str


def _target_environment(spec: Spec) -> dict[str, str]:
    """Marker values for the image: what uv assumes for --python-version/--python-platform."""
    machine = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[spec.platforms[0]]
    version = spec.python if spec.python.count(".") == 2 else f"{spec.python}.0"
    return {
        **{key: str(value) for key, value in default_environment().items()},
        "implementation_name": "cpython",
        "implementation_version": version,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": version,
        "python_version": ".".join(version.split(".")[:2]),
        "sys_platform": "linux",
    }


def installs_pip(spec: Spec) -> bool:
    """Whether envrepo installs pip packages into the environment (it has a pip lock and is
    not user managed)."""
    return not spec.user_managed and lock.pip_lock(spec) is not None


def locked(spec: Spec, site: PurePosixPath, cache_tag: str | None) -> list[Locked]:
    """The pip lock's distributions for the image's target, each with its layer's key."""
    pip_lock = lock.pip_lock(spec)
    if pip_lock is None or not installs_pip(spec):
        return []
    lock.require(spec, "pip", pip_lock)
    target = _target_environment(spec)
    common = {
        "format": LAYER_FORMAT,
        "python": spec.python,
        "platform": PLATFORM_TAGS[spec.platforms[0]],
        "site": str(site),
        "prefix": ENV_PREFIX,
        "installer": tool_version(),
        "bytecode": [cache_tag, POLICY] if cache_tag else None,
    }
    shown = f"{spec.display}/{pip_lock.name}"
    found = []
    for first, text in entries(lock.split(pip_lock.read_text(encoding="utf-8"))[1]):
        try:
            requirement = Requirement(first)
        except InvalidRequirement:
            requirement = None
        if requirement is None or not is_exact(requirement):
            raise EnvrepoError(
                Problem(
                    shown,
                    "",
                    f"{first!r} is not an exact pin as envrepo lock writes them; "
                    f"run envrepo lock {spec.name} --all",
                )
            )
        if requirement.marker is not None and not requirement.marker.evaluate(target):
            continue
        version = str(next(iter(requirement.specifier)).version)
        name = requirement.name
        hashes = sorted(_HASH.findall(text))
        key = json_sha256({**common, "package": [name, version, hashes]})
        found.append(Locked(name=name, version=version, key=key, text=text, source=shown))
    return found


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:3]).removeprefix("error: ") if lines else "no output"


def _rewrite_shebangs(folder: Path) -> None:
    # Console scripts name the host interpreter uv ran for; in the image it is the venv's.
    for script in folder.iterdir():
        if not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
            script.write_bytes(f"#!{ENV_PREFIX}/bin/python\n".encode() + rest)


def stage(spec: Spec, context: Path, wanted: Sequence[Locked]) -> Path:
    """Install the `wanted` entries of `spec`'s pip lock into a folder under `context` (uv's
    --target layout: packages, bin/, share/)."""
    subset = context / "wanted.lock"
    subset.write_text("".join(entry.text for entry in wanted), encoding="utf-8")
    target = context / "target"
    command = [
        uv(),
        "pip",
        "install",
        "--target",
        str(target),
        "--python-version",
        spec.python,
        "--python-platform",
        PLATFORM_TAGS[spec.platforms[0]],
        "--only-binary",
        ":all:",
        "--require-hashes",
        "--no-deps",
        "--quiet",
        "--color",
        "never",
        "-r",
        str(subset),
    ]
    if spec.wheels is not None:
        command += ["--find-links", str(spec.folder / spec.wheels)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvrepoError(
            Problem(
                wanted[0].source,
                "",
                (
                    f"the locked files cannot be installed: {_first_line(done.stderr)}; "
                    f"run envrepo lock {spec.name} --all if the lock is out of date"
                ),
            )
        )
    if (target / "bin").is_dir():
        _rewrite_shebangs(target / "bin")
    return target


def sources(target: Path, staging: Path, site: PurePosixPath) -> list[Job]:
    """The staged files that get bytecode, each by its path under `staging` and in the image."""
    jobs = []
    for path in sorted(target.rglob("*.py")):
        relative = path.relative_to(target).as_posix()
        if in_site(relative) and wanted(relative):
            shown = "/" + image_path(relative, site)
            jobs.append(Job(path.relative_to(staging).as_posix(), shown))
    return jobs
