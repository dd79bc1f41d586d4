"""The locked packages installed on the host for the image's target.

Each entry of the pip lock gets the cache key of the layer it makes, known before anything is
installed (its hashes name its files); only the entries whose layer is not made yet are
installed. uv installs the lock's files, hash-checked, from its content-addressed cache
(shared by every environment and run) into a staging folder; no container reaches a package
index, and no wheel file goes into a layer.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from envrepo.errors import EnvrepoError, Problem
from envrepo.image.bytecode import POLICY, Job, wanted
from envrepo.image.checks import Installed
from envrepo.image.layers import LAYER_FORMAT, Package, image_path, in_site
from envrepo.lock import uv
from envrepo.lock.locked import Locked, PipEntry
from envrepo.repo.digest import json_sha256
from envrepo.repo.platforms import PLATFORMS
from envrepo.repo.spec import ENV_PREFIX

UV_CACHE_INFO = "uv_cache.json"  # what uv writes beside a local wheel it installed
# uv's words for a pin with no wheel, in a lock written before `lock` looked for them.
_SOURCE_ONLY = re.compile(r"Because (\S+) has no usable wheels")


@dataclass(frozen=True)
class Wanted(Package):
    """A distribution of the pip lock with its layer's key: what `stage` installs when its
    layer is not made yet."""

    entry: PipEntry


def packages(
    locked: Locked,
    site: PurePosixPath,
    cache_tag: str | None,
    base_has: Mapping[str, Installed] | None = None,
) -> list[Wanted]:
    """The pip lock's distributions for the image's target, each with its layer's key and
    the files of another version of it that the base has (`base_has`), which it removes."""
    base_has = base_has or {}
    spec = locked.spec
    common = {
        "format": LAYER_FORMAT,
        "python": spec.python,
        "platform": PLATFORMS[spec.platforms[0]].pip_tag,
        "site": str(site),
        "prefix": ENV_PREFIX,
        "installer": uv.version(),
        "bytecode": [cache_tag, POLICY] if cache_tag else None,
    }
    found = []
    for entry in locked.pip:
        old = base_has.get(canonicalize_name(entry.name))
        replaces: tuple[str, ...] = ()
        if old is not None and old.version != entry.version:
            dist_info = str((site / old.dist_info).relative_to("/"))
            replaces = (dist_info, *(f for f in old.files if not f.startswith(dist_info + "/")))
        key = json_sha256(
            {
                **common,
                "package": [entry.name, entry.version, list(entry.hashes)],
                "replaces": replaces,
            }
            if replaces
            else {**common, "package": [entry.name, entry.version, list(entry.hashes)]}
        )
        found.append(Wanted(entry.name, entry.version, key, entry, replaces=replaces))
    return found


def _rewrite_shebangs(folder: Path) -> None:
    # Console scripts name the host interpreter uv ran for; in the image it is the venv's.
    for script in folder.iterdir():
        if not script.is_file():
            continue
        data = script.read_bytes()
        if data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
            rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
            script.write_bytes(f"#!{ENV_PREFIX}/bin/python\n".encode() + rest)


def stage(locked: Locked, context: Path, wanted: Sequence[Wanted]) -> Path:
    """Install the `wanted` entries of the pip lock into a folder under `context` (uv's
    --target layout: packages, bin/, share/). Each entry is fetched from the index its lock
    names (one of the spec's, by name, so that its credentials go there alone), the others
    from the default index."""
    spec = locked.spec
    target = context / "target"
    by_index: dict[str | None, list[Wanted]] = {}
    for package in wanted:
        by_index.setdefault(package.entry.index, []).append(package)
    for index, group in by_index.items():
        subset = context / f"wanted-{index or 'default'}.lock"
        subset.write_text("".join(package.entry.text for package in group), encoding="utf-8")
        command = uv.install_command(target, spec.target, subset)
        if spec.wheels_folder is not None:
            command += ["--find-links", str(spec.folder / spec.wheels_folder)]
        url = next((i.url for i in spec.indexes if i.name == index), None)
        if url is not None:
            command += ["--default-index", f"{index}={url}"]
        _install(locked, command)
    if (target / "bin").is_dir():
        _rewrite_shebangs(target / "bin")
    _forget_uv_cache_info(target)
    return target


def _install(locked: Locked, command: list[str]) -> None:
    spec = locked.spec
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return
    source_only = _SOURCE_ONLY.search(done.stderr)
    remedy = (
        f"{source_only.group(1)} is published only as source: run envrepo lock {spec.name} "
        "--build-wheels to build its wheel into the environment's wheels/"
        if source_only
        else f"run envrepo lock {spec.name} if the lock is out of date"
    )
    raise EnvrepoError(
        Problem(
            locked.pip_lock or spec.spec_display,
            "",
            f"the locked files cannot be installed: {uv.error_line(done.stderr)}; {remedy}",
        )
    )


def _forget_uv_cache_info(target: Path) -> None:
    # uv notes when it installed a local wheel (uv_cache.json, listed in RECORD); that is this
    # machine's cache talking, not the package, and it would make one spec hash two images.
    for noted in target.glob(f"*.dist-info/{UV_CACHE_INFO}"):
        noted.unlink()
        record = noted.parent / "RECORD"
        if record.is_file():
            entry = f"{noted.parent.name}/{UV_CACHE_INFO},"
            lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
            record.write_text(
                "".join(x for x in lines if not x.startswith(entry)), encoding="utf-8"
            )


def bytecode_jobs(target: Path, staging: Path, site: PurePosixPath) -> list[Job]:
    """The staged files that get bytecode, each by its path under `staging` and in the image."""
    jobs = []
    for path in sorted(target.rglob("*.py")):
        relative = path.relative_to(target).as_posix()
        if in_site(relative) and wanted(relative):
            shown = "/" + image_path(relative, site)
            jobs.append(Job(path.relative_to(staging).as_posix(), shown))
    return jobs
