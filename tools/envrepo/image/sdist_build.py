"""`lock --build-wheels`: a pin published only as source becomes a private wheel, built in a
throwaway container of the environment's own base image, with the network off and as a user
other than root. The host only downloads and checks: the sdist against its index's sha256, the
build requirements as hash-checked wheels installed (never run) for the image's target. No
package's code runs on this machine, and the wheel is built for the image's own python and
platform, natively where the base has a compiler."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envrepo.engine import http
from envrepo.engine.docker import Docker, Mounts
from envrepo.errors import EnvrepoError, Problem
from envrepo.hashing import SpecHash, spec_hash
from envrepo.image import bases, naming
from envrepo.lock import sdists, uv
from envrepo.lock.locked import Locked, base_image
from envrepo.repo.spec import WHEELS_DIR, Spec

# PEP 517's fallback for a source tree with no [build-system]: setuptools' legacy backend.
_LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
_LEGACY_REQUIRES = ("setuptools>=40.8.0",)
# `nobody`: the build gets no account of the image's and owns only its scratch folders.
BUILD_USER = "65534:65534"
_BUILD_TIMEOUT = 1800

# A PEP 517 frontend of a few lines, run by the image's interpreter in isolated mode: the
# build requirements are on sys.path from a read-only folder, the hooks are called in the
# unpacked source, and what the backend asks for beyond them is named instead of fetched.
FRONTEND = """\
import importlib, importlib.metadata, os, re, sys
source, out, backend, *paths = sys.argv[1:]
os.environ["HOME"] = os.environ["TMPDIR"] = "/tmp"
sys.path[:0] = ["/requires", *(os.path.join(source, p) for p in paths)]
os.chdir(source)
module, _, attribute = backend.partition(":")
hooks = importlib.import_module(module)
for part in filter(None, attribute.split(".")):
    hooks = getattr(hooks, part)
asked = getattr(hooks, "get_requires_for_build_wheel", lambda config_settings=None: [])()
missing = []
for requirement in asked:
    name = re.split(r"[\\s\\[<>=!~;(]", requirement.strip(), maxsplit=1)[0]
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        missing.append(requirement)
if missing:
    sys.exit("envrepo: the build also asks for " + ", ".join(missing))
print("envrepo-wheel:" + hooks.build_wheel(out))
"""


@dataclass(frozen=True)
class BuildSystem:
    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...]


def build_system(pyproject: str | None) -> BuildSystem:
    """The sdist's [build-system] (PEP 517/518), read as data: nothing of it runs here."""
    table = tomllib.loads(pyproject).get("build-system") if pyproject is not None else None
    if not isinstance(table, dict) or "build-backend" not in table:
        requires = table.get("requires") if isinstance(table, dict) else None
        return BuildSystem(tuple(requires or _LEGACY_REQUIRES), _LEGACY_BACKEND, ())
    return BuildSystem(
        tuple(str(r) for r in table.get("requires", ())),
        str(table["build-backend"]),
        tuple(str(p) for p in table.get("backend-path", ())),
    )


def _download(source: sdists.Source, work: Path, shown: str) -> Path:
    sdist = work / source.url.rsplit("/", 1)[-1]
    try:
        digest = http.download(source.url, sdist)
    except http.HTTPError as error:
        raise EnvrepoError(
            Problem(shown, "", f"{sdist.name} cannot be downloaded ({error.reason}); lock again")
        ) from None
    if digest != source.sha256:
        raise EnvrepoError(
            Problem(shown, "", f"{sdist.name} does not match the sha256 its index gives")
        )
    return sdist


def _unpack(sdist: Path, into: Path, shown: str) -> tuple[Path, str | None]:
    """The sdist's top folder, unpacked with regular files and folders only (no links, no
    devices, nothing outside `into`: the checks of tarfile's data filter, which this
    machine's python may predate), and its pyproject.toml's text."""
    try:
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                target = (into / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not target.is_relative_to(
                    into.resolve()
                ):
                    raise EnvrepoError(
                        Problem(
                            shown,
                            "",
                            f"{sdist.name} holds {member.name!r}, which is not a file or "
                            "folder inside the archive; it is not unpacked",
                        )
                    )
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = archive.extractfile(member)
                assert extracted is not None  # a regular file always has contents
                with extracted, target.open("wb") as out:
                    shutil.copyfileobj(extracted, out)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise EnvrepoError(
            Problem(
                shown, "", f"{sdist.name} is not a source archive that can be unpacked: {error}"
            )
        ) from None
    tops = [path for path in into.iterdir() if path.is_dir()] if into.is_dir() else []
    if len(tops) != 1:
        raise EnvrepoError(Problem(shown, "", f"{sdist.name} has no single top folder"))
    pyproject = tops[0] / "pyproject.toml"
    return tops[0], pyproject.read_text(encoding="utf-8") if pyproject.is_file() else None


def _requirements(
    spec: Spec, system: BuildSystem, options: Sequence[str], work: Path, shown: str
) -> Path:
    """The build requirements resolved for the image's target, as wheels only, and installed
    hash-checked into a folder the build reads (installing a wheel runs none of its code)."""
    folder = work / "requires"
    folder.mkdir()
    if not system.requires:
        return folder
    asked = work / "build-requires.in"
    asked.write_text("".join(f"{r}\n" for r in system.requires), encoding="utf-8")
    pinned = work / "build-requires.txt"
    steps = [
        uv.compile_command([str(asked)], pinned, ["--generate-hashes", *options]),
        uv.install_command(folder, spec.target, pinned),
    ]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise EnvrepoError(
                Problem(
                    shown,
                    "",
                    f"the build requirements ({', '.join(system.requires)}) cannot be had as "
                    f"wheels for the image: {uv.error_line(done.stderr)}",
                )
            )
    return folder


def build_image(
    engine: Docker, spec: Spec, ancestors: Sequence[Spec], registry: str | None
) -> tuple[str, str]:
    """The image an environment is built on, in the daemon, and its python."""
    parent_hash: SpecHash | None = None
    for ancestor in reversed(ancestors):
        parent_hash = spec_hash(ancestor, parent_hash)
    parent = ancestors[0] if ancestors else None
    parents = {}
    if parent is not None and parent_hash is not None:
        tag = naming.hash_tag(parent_hash)
        found = engine.tagged(parent.name, tag)
        if found is None:
            reference = naming.by_hash(registry or naming.LOCAL, parent.name, parent_hash)
            if registry is None:
                raise EnvrepoError(
                    Problem(
                        spec.display,
                        "base",
                        f"{parent.name}'s image ({tag}) is not here, and wheels are built in "
                        f"it; run envrepo build {parent.name} first",
                    )
                )
            found = bases.ensure(engine, reference, None, lambda _: None).id
        parents[parent.name] = found
    locked = Locked(spec, spec_hash(spec, parent_hash), parent, base_image=base_image(spec))
    image = bases.reference(engine, locked, parents, lambda _: None)
    bases.ensure(engine, image, None, lambda _: None)
    return image, parent.interpreter if parent is not None else "python3"


def _open_to_builder(*folders: Path) -> None:
    # The build runs as `nobody`: it reads the source and requirements, writes the source
    # tree (backends build in place) and the output folder, and nothing else of this host.
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o777 if path.is_dir() else 0o666)


def build_wheels(
    spec: Spec,
    ancestors: Sequence[Spec],
    sources: Sequence[sdists.Source],
    options: Sequence[str],
    registry: str | None,
    work: Path,
    shown: str,
) -> list[Path]:
    """Each source's wheel, built in the base image, copied into the environment's wheels
    folder; an error naming the package when it cannot be built or does not fit the image."""
    engine = Docker()
    image, interpreter = build_image(engine, spec, ancestors, registry)
    tags = spec.target.wheel_tags(built_in_image=True)
    folder = spec.folder / (spec.wheels or WHEELS_DIR)
    made = []
    for source in sources:
        scratch = work / f"build-{source.name}"
        scratch.mkdir()
        sdist = _download(source, scratch, shown)
        tree, pyproject = _unpack(sdist, scratch / "source", shown)
        system = build_system(pyproject)
        requires = _requirements(spec, system, options, scratch, shown)
        out = scratch / "out"
        out.mkdir()
        _open_to_builder(tree, requires, out)
        mounts: Mounts = {
            str(tree): {"bind": "/source", "mode": "rw"},
            str(requires): {"bind": "/requires", "mode": "ro"},
            str(out): {"bind": "/out", "mode": "rw"},
        }
        command = [interpreter, "-I", "-c", FRONTEND, "/source", "/out", system.backend]
        code, output = engine.run(
            image, [*command, *system.backend_path], mounts, BUILD_USER, _BUILD_TIMEOUT
        )
        wheels = sorted(out.glob("*.whl")) if code == 0 else []
        if not wheels:
            why = " ".join(output.split())[-300:] or f"exit code {code}"
            raise EnvrepoError(
                Problem(
                    shown,
                    "",
                    f"{source.name} {source.version} cannot be built into a wheel in the base "
                    f"image {image} ({why}); a native package needs a compiler there, or build "
                    f"its wheel for the image's target and put it into {spec.display}/"
                    f"{spec.wheels or WHEELS_DIR}/",
                )
            )
        wheel = wheels[0]
        if not sdists.fits(wheel.name, tags):
            raise EnvrepoError(
                Problem(
                    shown,
                    "",
                    f"{source.name} {source.version} builds in the base image as {wheel.name}, "
                    f"which the image (python {spec.python}, {spec.platforms[0]}) cannot "
                    f"install; build it for the image's target and put it into "
                    f"{spec.display}/{spec.wheels or WHEELS_DIR}/",
                )
            )
        folder.mkdir(exist_ok=True)
        partial = folder / f".{wheel.name}.{os.getpid()}.part"
        try:
            shutil.copyfile(wheel, partial)
            partial.replace(folder / wheel.name)
        finally:
            partial.unlink(missing_ok=True)
        made.append(folder / wheel.name)
    return made
