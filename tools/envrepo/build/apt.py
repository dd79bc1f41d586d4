"""Debian packages for an image: resolved and downloaded on the host against the image's own
dpkg status and suite (never the host's installed set), then installed by dpkg in a container
with the network off, the .deb files mounted read-only so that none stays in a layer."""

from __future__ import annotations

import io
import posixpath
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import docker
import docker.errors

from envrepo.build import bootstrap
from envrepo.build.checks import container
from envrepo.errors import EnvrepoError
from envrepo.repo.files import cache_dir
from envrepo.repo.spec import Bootstrap

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _file_from_image(client: docker.DockerClient, image: str, path: str) -> bytes:
    with container(client, image=image, command=["true"]) as found:
        try:
            stream, _ = found.get_archive(path)
        except docker.errors.NotFound:
            return b""
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            first = archive.getmembers()[0]
            if first.issym():
                target = str(PurePosixPath(path).parent / first.linkname)
                return _file_from_image(client, image, posixpath.normpath(target))
            member = archive.extractfile(first)
            return member.read() if member is not None else b""


def _suite(os_release: bytes) -> str:
    for line in os_release.decode(errors="replace").splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise EnvrepoError(
        "the base image is not Debian (no VERSION_CODENAME in /etc/os-release); "
        "apt packages need a Debian base"
    )


def download(
    client: docker.DockerClient,
    image: str,
    packages: Sequence[str],
    target: Path,
    log: Callable[[str], None],
) -> list[Path]:
    """The .deb files `packages` need on top of `image`, downloaded into `target`."""
    status = target / "status"
    status.write_bytes(_file_from_image(client, image, "/var/lib/dpkg/status"))
    suite = _suite(_file_from_image(client, image, "/etc/os-release"))
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


def install(
    client: docker.DockerClient, image: str, packages: Sequence[str], log: Callable[[str], None]
) -> str:
    """A new image: `image` with `packages` installed by dpkg; its ID."""
    with tempfile.TemporaryDirectory(prefix="envrepo-apt-") as scratch:
        debs = download(client, image, packages, Path(scratch), log)
        if not debs:
            return image
        command = ["sh", "-c", "dpkg -i /envrepo-debs/*.deb && rm -rf /var/lib/apt/lists/*"]
        with container(
            client,
            image=image,
            command=command,
            network_disabled=True,
            volumes={str(Path(scratch) / "debs"): {"bind": "/envrepo-debs", "mode": "ro"}},
        ) as installing:
            installing.start()
            code = int(installing.wait(timeout=900)["StatusCode"])
            output = installing.logs().decode(errors="replace")
            for line in output.splitlines()[-15:]:
                log(f"  {line}")
            if code != 0:
                raise EnvrepoError(
                    f"dpkg could not install {', '.join(packages)} (exit {code}); see the build log"
                )
            return str(installing.commit(changes=[]).id)
