"""The platforms an environment can target, and what each is called by the tools that resolve,
install and run for it. The schema's `platforms` enum lists the same names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
