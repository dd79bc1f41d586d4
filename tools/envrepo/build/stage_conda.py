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

from envrepo.errors import EnvrepoError, Problem
from envrepo.lock.conda import RATTLER_ERRORS
from envrepo.lock.locked import Locked
from envrepo.repo.files import cache_dir
from envrepo.repo.platforms import PLATFORMS
from envrepo.repo.spec import ENV_PREFIX


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


def stage_conda(locked: Locked, prefix: Path) -> Path | None:
    """Link the locked conda packages into `prefix` as the image's /opt/env."""
    if locked.conda_lock is None:
        return None
    shown = locked.conda_lock
    subdir = PLATFORMS[locked.spec.platforms[0]].conda_subdir
    files = [fetch(item.url, item.sha256, shown) for item in locked.conda]
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
