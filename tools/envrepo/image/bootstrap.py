"""Root images from the Debian archive: debootstrap into a folder, then `docker import`.

The mirror is transport, not identity: it comes from the host's apt configuration (or
ENVREPO_DEBIAN_MIRROR) and is never part of the hash; suite, variant, packages and snapshot
date are.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from envrepo.errors import EnvrepoError
from envrepo.image.assemble import epoch
from envrepo.repo.digest import json_sha256
from envrepo.repo.spec import Bootstrap

if TYPE_CHECKING:
    from envrepo.engine.docker import Docker, Log

SOURCES = Path("/etc/apt/sources.list")
SOURCES_DIR = Path("/etc/apt/sources.list.d")
IMAGE = "envrepo-bootstrap"
ROOT_FORMAT = (
    3  # 2: no downloaded .deb files or package lists; 3: no logs or caches, mtimes clamped
)


def _uris() -> list[str]:
    """Debian archive URIs from the host's apt sources, security archives last."""
    found: list[str] = []
    if SOURCES.is_file():
        for line in SOURCES.read_text().splitlines():
            match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line.strip())
            if match:
                found.append(match.group(1))
    for path in sorted(SOURCES_DIR.glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:"):
                found += line.split()[1:]
    return sorted(dict.fromkeys(found), key=lambda uri: "security" in uri)


def mirror(boot: Bootstrap) -> str:
    if boot.snapshot:
        base = os.environ.get("ENVREPO_DEBIAN_SNAPSHOT_MIRROR")
        if not base:
            raise EnvrepoError(
                f"base.bootstrap.snapshot is {boot.snapshot}, and a snapshot needs a snapshot "
                "archive: set ENVREPO_DEBIAN_SNAPSHOT_MIRROR to its base URL"
            )
        return f"{base.rstrip('/')}/archive/debian/{boot.snapshot}/"
    configured = os.environ.get("ENVREPO_DEBIAN_MIRROR")
    if configured:
        return configured
    uris = _uris()
    if not uris:
        raise EnvrepoError(
            "no Debian mirror in the host's apt sources; set ENVREPO_DEBIAN_MIRROR to one"
        )
    return uris[0]


def image_tag(boot: Bootstrap) -> str:
    identity = {
        "format": ROOT_FORMAT,
        "suite": boot.suite,
        "variant": boot.variant,
        "packages": sorted(set(boot.packages)),
        "snapshot": boot.snapshot,
    }
    return f"{IMAGE}:{json_sha256(identity)[:16]}"


def debootstrap_command(boot: Bootstrap, target: Path, source: str) -> list[str]:
    command = ["debootstrap"]
    if boot.variant != "default":
        command.append(f"--variant={boot.variant}")
    if boot.packages:
        command.append(f"--include={','.join(sorted(set(boot.packages)))}")
    return [*command, boot.suite, str(target), source]


def build_root_image(engine: Docker, boot: Bootstrap, log: Log) -> str:
    """The local tag of the root image for `boot`, made now unless it is already there."""
    tag = image_tag(boot)
    if engine.image(tag) is not None:
        log(f"bootstrap image {tag} is already there")
        return tag
    if shutil.which("debootstrap") is None:
        raise EnvrepoError(
            "debootstrap is not installed; install it (apt-get install debootstrap "
            "debian-archive-keyring) to build a base.bootstrap root"
        )
    source = mirror(boot)
    with tempfile.TemporaryDirectory(prefix="envrepo-bootstrap-") as scratch:
        root = Path(scratch) / "root"
        try:
            _debootstrap(boot, root, source, log)
            _forget_the_run(root)
            engine.import_folder(root, tag, epoch())
        finally:
            # debootstrap mounts /proc and /sys in its target, and a run stopped half way
            # leaves them there: the folder is removed only once nothing is mounted in it.
            _unmount_below(root)
    log(f"imported {tag}")
    return tag


def _debootstrap(boot: Bootstrap, root: Path, source: str, log: Log) -> None:
    """Run debootstrap into `root`, its output into the log; stopped with all its children
    (in a session of its own) when the build stops."""
    process = subprocess.Popen(
        debootstrap_command(boot, root, source),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for line in process.stdout or ():
            log(line.rstrip())
        code = process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    if code != 0:
        raise EnvrepoError(
            f"debootstrap of {boot.suite} failed (exit {code}); the build log has its output"
        )


# What a run of debootstrap or dpkg leaves that says when and where it ran rather than what it
# installed: downloaded packages and lists, logs, caches rebuilt on demand.
RUN_TRACES = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*_*",
    "var/log/*.log",
    "var/log/apt/*",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
)


def _forget_the_run(root: Path) -> None:
    for pattern in RUN_TRACES:
        for leftover in root.glob(pattern):
            if leftover.is_file() or leftover.is_symlink():
                leftover.unlink()
    for identity in ("etc/machine-id", "var/lib/dbus/machine-id"):
        if (root / identity).is_file():
            (root / identity).write_text("")


def _unmount_below(root: Path) -> None:
    """Detach every mount at or below `root`, deepest first."""
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if Path(point) == root or Path(point).is_relative_to(root):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
