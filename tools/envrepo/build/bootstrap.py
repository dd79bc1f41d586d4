"""Root images from the Debian archive: debootstrap into a folder, then `docker import`.

The mirror is transport, not identity: it comes from the host's apt configuration (or
ENVREPO_DEBIAN_MIRROR) and is never part of the hash; suite, variant, packages and snapshot
date are.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from envrepo.errors import EnvrepoError
from envrepo.repo.digest import json_sha256
from envrepo.repo.spec import Bootstrap

if TYPE_CHECKING:
    from envrepo.engine.docker import Docker, Log

SOURCES = Path("/etc/apt/sources.list")
SOURCES_DIR = Path("/etc/apt/sources.list.d")
IMAGE = "envrepo-bootstrap"
ROOT_FORMAT = 2  # 2: debootstrap's downloaded .deb files and package lists are left out


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
            "debootstrap is not installed; install it (apt-get install debootstrap) or run "
            "scripts/services.sh"
        )
    source = mirror(boot)
    with tempfile.TemporaryDirectory(prefix="envrepo-bootstrap-") as scratch:
        root = Path(scratch) / "root"
        log(
            f"debootstrap {boot.suite} ({boot.variant}) with {', '.join(boot.packages) or 'no extras'}"
        )
        process = subprocess.Popen(
            debootstrap_command(boot, root, source),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log(line.rstrip())
        if process.wait() != 0:
            raise EnvrepoError(
                f"debootstrap of {boot.suite} failed (exit {process.returncode}); "
                "the build log has its output"
            )
        for leftover in [
            *root.glob("var/cache/apt/archives/*.deb"),
            *root.glob("var/lib/apt/lists/*_*"),
        ]:
            leftover.unlink()
        engine.import_folder(root, tag)
    log(f"imported {tag}")
    return tag
