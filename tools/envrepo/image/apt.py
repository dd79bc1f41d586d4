"""Debian packages for an image: resolved and downloaded on the host against the image's own
dpkg status and suite (never the host's installed set), then installed by dpkg in a container
with the network off, the .deb files mounted read-only so that none stays in a layer."""

from __future__ import annotations

import posixpath
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from envrepo.engine.docker import Docker, ImageInfo, Log
from envrepo.errors import EnvrepoError
from envrepo.image import bootstrap
from envrepo.image.assemble import epoch
from envrepo.repo.files import cache_dir
from envrepo.repo.spec import Bootstrap

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MARK = "/var/tmp/envrepo-before"
# An existing folder of every Debian root: a mount point Docker would have to make would go
# into the layer with the time it was made.
DEBS = "/mnt"
DPKG = f"touch {MARK} && dpkg -i {DEBS}/*.deb"


def forget_the_run(when: int) -> str:
    """Shell that removes the traces of a dpkg run and sets every file it changed to `when`,
    so that the same packages on the same base give the same layer."""
    traces = " ".join(f"/{pattern}" for pattern in bootstrap.RUN_TRACES)
    return (
        # Only what this run wrote: a file the base has would be whited out at the time it went.
        f'for f in {traces}; do [ -f "$f" ] && [ "$f" -nt {MARK} ] && rm -f "$f"; done; '
        f"find / -xdev -newer {MARK} ! -path {MARK} -exec touch -h -d @{when} {{}} + ; "
        f"rm -f {MARK} && touch -h -d @{when} {posixpath.dirname(MARK)}"
    )


def _suite(os_release: bytes) -> str:
    for line in os_release.decode(errors="replace").splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise EnvrepoError(
        "the base image is not Debian (no VERSION_CODENAME in /etc/os-release); "
        "apt packages need a Debian base"
    )


def download(
    engine: Docker, image: str, packages: Sequence[str], target: Path, log: Log
) -> list[Path]:
    """The .deb files `packages` need on top of `image`, downloaded into `target`."""
    status = target / "status"
    status.write_bytes(engine.read_file(image, "/var/lib/dpkg/status"))
    suite = _suite(engine.read_file(image, "/etc/os-release"))
    mirror = bootstrap.mirror(Bootstrap(suite))
    root = cache_dir("apt") / suite  # package lists, shared by builds
    archives = target / "debs"
    for folder in (root / "lists/partial", archives / "partial", target / "parts"):
        folder.mkdir(parents=True, exist_ok=True)
    sources = target / "sources.list"
    sources.write_text(f"deb [signed-by={KEYRING}] {mirror} {suite} main\n")
    options = [
        "-o",
        f"Dir::Etc::sourcelist={sources}",
        "-o",
        f"Dir::Etc::sourceparts={target / 'parts'}",
        "-o",
        f"Dir::State::lists={root / 'lists'}",
        "-o",
        f"Dir::State::status={status}",
        "-o",
        f"Dir::Cache={root}",
        "-o",
        f"Dir::Cache::archives={archives}",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        "APT::Get::List-Cleanup=0",
        "-o",
        "Dir::Etc::preferences=/dev/null",
        "-o",
        f"Dir::Etc::preferencesparts={target / 'parts'}",
        "-q",
    ]
    for step in (
        ["update"],
        ["install", "--download-only", "-y", "--no-install-recommends", *packages],
    ):
        done = subprocess.run(
            ["apt-get", *options, *step], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            reason = " ".join(line for line in done.stderr.splitlines() if line.startswith("E:"))
            raise EnvrepoError(
                f"apt-get {step[0]} for {suite} failed: "
                f"{reason or done.stderr.strip()[-300:]}; check the package names"
            )
    # A fresh archives folder per build: what is in it is exactly what the image needs.
    debs = sorted(archives.glob("*.deb"))
    log(f"apt: {len(debs)} packages for {', '.join(packages)} from {suite}")
    return debs


@contextmanager
def installed(
    engine: Docker, base: ImageInfo, packages: Sequence[str], log: Log
) -> Iterator[ImageInfo]:
    """A new image for the block: `base` with `packages` installed by dpkg, removed when the
    block ends (an image loaded on it keeps the layers it shares)."""
    with tempfile.TemporaryDirectory(prefix="envrepo-apt-") as scratch:
        debs = download(engine, base.id, packages, Path(scratch), log)
        if not debs:
            yield base
            return
        # dpkg's own exit status decides, whatever the clean-up after it does.
        command = ["sh", "-c", f"{DPKG}; code=$?; {forget_the_run(epoch())}; exit $code"]
        mounts = {str(Path(scratch) / "debs"): {"bind": DEBS, "mode": "ro"}}
        code, output, image = engine.run_and_commit(base.id, command, mounts, timeout=900)
        for line in output.splitlines()[-15:]:
            log(f"  {line}")
    if image is None:
        raise EnvrepoError(
            f"dpkg could not install {', '.join(packages)} (exit {code}); see the build log"
        )
    try:
        yield image
    finally:
        engine.forget(image.id)
