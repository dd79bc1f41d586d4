"""Conda packages for an image: the lock's files downloaded on the host into a cache named by
their sha256, checked against it, and linked by rattler into a folder as if it were the
image's /opt/env (rattler's alternative_target_prefix), so that nothing runs in a container."""

from __future__ import annotations

import asyncio
import hashlib
import os
import urllib.parse
import urllib.request
from pathlib import Path

import rattler
from rattler import RepoDataRecord
from rattler.platform import Subdir

from envrepo.build.render import ENV_PREFIX
from envrepo.errors import EnvrepoError, Problem
from envrepo.lock.conda import RATTLER_ERRORS, SUBDIRS
from envrepo.lock.files import lock_path, require, split
from envrepo.repo.files import cache_dir
from envrepo.repo.spec import Spec


def locked_urls(lock_text: str, subdir: str) -> list[tuple[str, str]]:
    """(url, sha256) of every package the lock names for `subdir`."""
    entries: list[tuple[str, str]] = []
    current = None
    for line in split(lock_text)[1].splitlines():
        if line.startswith("# platform:"):
            current = line.split(":", 1)[1].strip()
        elif current == subdir and "#sha256=" in line and not line.startswith("#"):
            url, _, digest = line.partition("#sha256=")
            entries.append((url.strip(), digest.strip()))
    return entries


def fetch(url: str, digest: str, shown: str) -> Path:
    """The package file, from the cache or downloaded, checked against its sha256."""
    name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
    cached = cache_dir("conda-files") / f"{digest}-{name}"
    if not cached.is_file():
        partial = cached.with_suffix(cached.suffix + f".{os.getpid()}.part")
        try:
            with urllib.request.urlopen(url, timeout=300) as response, partial.open("wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            found = hashlib.sha256(partial.read_bytes()).hexdigest()
            if found != digest:
                raise EnvrepoError(
                    Problem(
                        shown,
                        "",
                        (
                            f"{name} has sha256 {found[:12]}…, the lock says {digest[:12]}…; "
                            "the channel changed the file: lock again and review"
                        ),
                    )
                )
            partial.replace(cached)
        except OSError as error:
            raise EnvrepoError(
                Problem(shown, "", f"{name} cannot be downloaded ({error})")
            ) from None
        finally:
            partial.unlink(missing_ok=True)
    return cached


def stage_conda(spec: Spec, context: Path) -> Path | None:
    """Link the locked conda packages into `context`/prefix as the image's /opt/env."""
    if spec.conda is None:
        return None
    conda_lock = lock_path(spec.folder / spec.conda)
    shown = f"{spec.display}/{conda_lock.name}"
    require(spec, "conda", conda_lock)
    subdir = SUBDIRS[spec.platforms[0]]
    entries = locked_urls(conda_lock.read_text(encoding="utf-8"), subdir)
    files = [fetch(url, digest, shown) for url, digest in entries]
    prefix = context / "prefix"
    try:
        records = [asyncio.run(RepoDataRecord.from_package_archive(path)) for path in files]
        asyncio.run(
            rattler.install(
                records,
                target_prefix=prefix,
                alternative_target_prefix=ENV_PREFIX,
                cache_dir=cache_dir("conda-pkgs"),
                show_progress=False,
                execute_link_scripts=False,
                platform=Subdir(subdir),
            )
        )
    except RATTLER_ERRORS as error:
        raise EnvrepoError(
            Problem(
                shown,
                "",
                (f"the locked conda packages cannot be linked: {' '.join(str(error).split())}"),
            )
        ) from None
    return prefix
