"""Conda packages for an image: the lock's files downloaded on the host into a cache named by
their sha256, checked against it, and linked by rattler into a folder as if it were the
image's /opt/env (rattler's alternative_target_prefix), so that nothing runs in a container."""

from __future__ import annotations

import asyncio
import os
import urllib.parse
from pathlib import Path

import rattler
from rattler import RepoDataRecord
from rattler.platform import Subdir

from envrepo.engine import http
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
        unchecked = cached.with_name(f"{cached.name}.{os.getpid()}.unchecked")
        try:
            found = http.download(url, unchecked)
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
            unchecked.replace(cached)
        except http.HTTPError as error:
            raise EnvrepoError(
                Problem(shown, "", f"{name} cannot be downloaded ({error.reason})")
            ) from None
        finally:
            unchecked.unlink(missing_ok=True)
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
