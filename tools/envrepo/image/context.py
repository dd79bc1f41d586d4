"""A Docker build context for `render --context DIR`: the Dockerfile, and the locked packages
staged on the host as it copies them (the conda prefix linked as /opt/env, the pip lock
installed for the image's target), so that `docker build DIR` needs no package index."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from envrepo.errors import fail
from envrepo.hashing import hash_environments
from envrepo.image import render
from envrepo.image.stage import packages, stage
from envrepo.image.stage_conda import stage_conda
from envrepo.lock.locked import read_locked
from envrepo.repo.spec import Catalog, get, site_packages


def write_context(catalog: Catalog, name: str, registry: str | None, folder: Path) -> Path:
    """Stage environment `name` into the new folder `folder`, which appears whole or not at all."""
    if folder.exists() or folder.is_symlink():
        raise fail(str(folder), "", "already exists; pass a folder that does not exist yet")
    spec = get(catalog, name)
    parent = catalog.specs.get(spec.parent or "")
    locked = read_locked(spec, hash_environments(catalog, [name])[name], parent)
    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    staging.mkdir(parents=True)
    try:
        stage_conda(locked, staging / "conda-prefix")
        folders: list[str] = []
        if locked.installs_pip and not spec.user_managed:
            work = staging / ".work"
            work.mkdir()
            wanted = packages(locked, PurePosixPath(site_packages(spec)), None)
            target = stage(locked, work, wanted)
            env = staging / "env"
            for entry in sorted(target.iterdir()):
                # uv --target's layout: bin/ and share/ of the prefix, the rest site-packages.
                inside = entry.name in ("bin", "share")
                destination = env / entry.name if inside else env / "site-packages" / entry.name
                destination.parent.mkdir(parents=True, exist_ok=True)
                entry.rename(destination)
            folders = [f for f in ("site-packages", "bin", "share") if (env / f).is_dir()]
            shutil.rmtree(work)
        text = render.for_environment(catalog, name, registry, render.Layout(tuple(folders)))
        (staging / "Dockerfile").write_text(text, encoding="utf-8")
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder
