"""Packages published only as source: an image installs wheels only (no compiler, no index in
the build), so a resolution that needs an sdist is found at lock time, from uv's refusal to
build or from the files uv's pylock.toml lists for each pin, and named with the line that
builds its wheel (lock --build-wheels, in the base image: see sdist_build)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import parse_wheel_filename

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.spec import WHEELS_DIR, Spec


@dataclass(frozen=True)
class Source:
    """A pinned distribution that has no wheel the image can install."""

    name: str
    version: str
    url: str
    sha256: str


def fits(wheel: str, tags: set[Tag]) -> bool:
    return bool(parse_wheel_filename(wheel)[3] & tags)


def only_source(spec: Spec, pylock: Path) -> list[Source]:
    """The packages of uv's pylock.toml with no wheel the image can install."""
    tags = spec.target.wheel_tags()
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
                f"build {'its wheel' if len(sources) == 1 else 'their wheels'} in its base image into "
                f"{spec.display}/{spec.wheels or WHEELS_DIR}/, or require a version with wheels"
            ),
        )
    )
