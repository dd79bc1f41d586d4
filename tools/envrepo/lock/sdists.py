"""Packages published only as source: an image installs wheels only (no compiler, no index in
the build), so a resolution that needs an sdist is found at lock time, from the files uv's
pylock.toml lists for each pin, and the wheel is built on the host for the image's target
into the environment's private wheels where that can be done (a pure-Python package, or one
whose wheel here fits the target)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tomllib
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.platforms import PLATFORMS
from envrepo.repo.spec import WHEELS_DIR, Spec

# The oldest glibc a manylinux wheel may ask for, and the aliases PEP 600 keeps.
_LEGACY = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}


@dataclass(frozen=True)
class Source:
    """A pinned distribution that has no wheel the image can install."""

    name: str
    version: str
    url: str
    sha256: str


def target_tags(spec: Spec) -> set[Tag]:
    """The wheel tags the image's python and platform install."""
    platform = PLATFORMS[spec.platforms[0]].pip_tag  # such as x86_64-manylinux_2_28
    arch, _, policy = platform.partition("-")
    newest = int(policy.rsplit("_", 1)[-1]) if policy.startswith("manylinux_2_") else 17
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
    platforms += [f"{alias}_{arch}" for alias, minor in _LEGACY.items() if minor <= newest]
    version = tuple(int(part) for part in spec.python.split(".")[:2])
    return set(cpython_tags(version, platforms=platforms)) | set(
        compatible_tags(version, platforms=platforms)
    )


def fits(wheel: str, tags: set[Tag]) -> bool:
    return bool(parse_wheel_filename(wheel)[3] & tags)


def only_source(spec: Spec, pylock: Path) -> list[Source]:
    """The packages of uv's pylock.toml with no wheel the image can install."""
    tags = target_tags(spec)
    found = []
    for package in tomllib.loads(pylock.read_text(encoding="utf-8")).get("packages", []):
        wheels = [str(w.get("url", "")).rsplit("/", 1)[-1] for w in package.get("wheels", [])]
        sdist = package.get("sdist")
        if sdist is None or any(fits(name, tags) for name in wheels if name.endswith(".whl")):
            continue
        digest = str(sdist.get("hashes", {}).get("sha256", ""))
        found.append(Source(package["name"], package["version"], str(sdist.get("url", "")), digest))
    return found


# uv's words for a pin that would need building while building is off.
_NO_WHEELS = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s,]+) has no usable wheels")


def refused(stderr: str) -> list[Source]:
    """The pins a --no-build resolution refused for having only source, from uv's error."""
    text = " ".join(stderr.split())
    found = dict.fromkeys(_NO_WHEELS.findall(text))
    return [Source(name, version, "", "") for name, version in found]


def remedy(spec: Spec, sources: Sequence[Source], shown: str) -> EnvrepoError:
    names = ", ".join(f"{s.name} {s.version}" for s in sources)
    return EnvrepoError(
        Problem(
            shown,
            "",
            (
                f"{names} {'is' if len(sources) == 1 else 'are'} published only as source, and an "
                f"image installs wheels only; run envrepo lock {spec.name} --build-wheels to "
                f"build {'its wheel' if len(sources) == 1 else 'their wheels'} here into "
                f"{spec.display}/{spec.wheels or WHEELS_DIR}/, or require a version with wheels"
            ),
        )
    )


def build_wheels(
    spec: Spec, sources: Sequence[Source], uv: str, work: Path, shown: str
) -> list[Path]:
    """Each source's wheel, built on the host from its hash-checked sdist, into the
    environment's wheels folder; an error naming the package when it does not fit the image."""
    tags = target_tags(spec)
    folder = spec.folder / (spec.wheels or WHEELS_DIR)
    made = []
    for source in sources:
        sdist = work / source.url.rsplit("/", 1)[-1]
        try:
            with (
                urllib.request.urlopen(source.url, timeout=300) as response,
                sdist.open("wb") as out,
            ):
                shutil.copyfileobj(response, out)
        except OSError as error:
            why = getattr(error, "reason", None) or error
            raise EnvrepoError(
                Problem(shown, "", f"{sdist.name} cannot be downloaded ({why}); lock again")
            ) from None
        if hashlib.sha256(sdist.read_bytes()).hexdigest() != source.sha256:
            raise EnvrepoError(
                Problem(shown, "", f"{sdist.name} does not match the sha256 its index gives")
            )
        out_dir = work / f"built-{source.name}"
        done = subprocess.run(
            [uv, "build", "--wheel", "--out-dir", str(out_dir), "--quiet", str(sdist)],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(out_dir.glob("*.whl")) if done.returncode == 0 else []
        if not wheels:
            why = " ".join(done.stderr.split())[-300:] or "no wheel came out"
            raise EnvrepoError(
                Problem(
                    shown,
                    "",
                    f"{source.name} {source.version} cannot be built into a wheel here ({why}); "
                    f"build it for the image's target and put it into {spec.display}/"
                    f"{spec.wheels or WHEELS_DIR}/",
                )
            )
        wheel = wheels[0]
        if not fits(wheel.name, tags):
            raise EnvrepoError(
                Problem(
                    shown,
                    "",
                    f"{source.name} {source.version} builds here as {wheel.name}, which the "
                    f"image (python {spec.python}, {spec.platforms[0]}) cannot install: it "
                    "is not pure Python; build it for the image's target and put it into "
                    f"{spec.display}/{spec.wheels or WHEELS_DIR}/",
                )
            )
        folder.mkdir(exist_ok=True)
        partial = folder / f".{wheel.name}.{os.getpid()}.part"
        try:
            shutil.copyfile(wheel, partial)
            partial.replace(folder / wheel.name)
        finally:
            partial.unlink(missing_ok=True)
        made.append(folder / wheel.name)
    return made
