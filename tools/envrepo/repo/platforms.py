"""The platforms an environment can target, and what each is called by the tools that resolve,
install and run for it. The schema's `platforms` enum lists the same names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from packaging.markers import default_environment
from packaging.tags import Tag, compatible_tags, cpython_tags

Subdir = Literal["linux-64", "linux-aarch64"]


@dataclass(frozen=True)
class Platform:
    """One target platform: uv's platform tag (the oldest glibc the curated images and most
    wheels agree on), conda's subdir, and the machine name markers and archspec use."""

    name: str
    pip_tag: str
    conda_subdir: Subdir
    machine: str


PLATFORMS: dict[str, Platform] = {
    platform.name: platform
    for platform in (
        Platform("linux/amd64", "x86_64-manylinux_2_28", "linux-64", "x86_64"),
        Platform("linux/arm64", "aarch64-manylinux_2_28", "linux-aarch64", "aarch64"),
    )
}

# The oldest glibc a manylinux wheel may ask for, by the aliases PEP 600 keeps.
_LEGACY = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}


@dataclass(frozen=True)
class Target:
    """What packages are chosen for: an image's python on one platform, never this machine.
    uv's options, the environment markers, the wheel tags and conda's subdir all follow
    from it, so that the resolver, the installer and every check agree."""

    python: str
    platform: Platform

    @classmethod
    def of(cls, python: str, platform: str) -> Target:
        return cls(python, PLATFORMS[platform])

    @property
    def major_minor(self) -> str:
        return ".".join(self.python.split(".")[:2])

    def uv_options(self) -> list[str]:
        return ["--python-version", self.python, "--python-platform", self.platform.pip_tag]

    def markers(self) -> dict[str, str]:
        """Marker values for the image: what uv assumes for its --python-version and
        --python-platform."""
        version = self.python if self.python.count(".") == 2 else f"{self.python}.0"
        return {
            **{key: str(value) for key, value in default_environment().items()},
            "implementation_name": "cpython",
            "implementation_version": version,
            "os_name": "posix",
            "platform_machine": self.platform.machine,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "python_full_version": version,
            "python_version": self.major_minor,
            "sys_platform": "linux",
        }

    def wheel_tags(self, built_in_image: bool = False) -> set[Tag]:
        """The wheel tags the image installs; with `built_in_image`, also the plain
        linux_<arch> tag a wheel built in the image itself gets (it was linked against that
        image's own libraries)."""
        arch, _, policy = self.platform.pip_tag.partition("-")
        newest = int(policy.rsplit("_", 1)[-1]) if policy.startswith("manylinux_2_") else 17
        platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(newest, 4, -1)]
        platforms += [f"{alias}_{arch}" for alias, minor in _LEGACY.items() if minor <= newest]
        if built_in_image:
            platforms.append(f"linux_{arch}")
        version = tuple(int(part) for part in self.major_minor.split("."))
        return set(cpython_tags(version, platforms=platforms)) | set(
            compatible_tags(version, platforms=platforms)
        )
