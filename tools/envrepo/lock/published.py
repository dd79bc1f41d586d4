"""The published-base locker: `base.published` (NAME@VERSION of another repository's index)
is resolved to that version's image by digest, and its installed pip packages are kept as
the constraints the environment's own pip lock is made on, as a parent's pins are inside one
repository. The lock records the version, spec hash and index, so `lock --check` and builds
stay offline."""

from __future__ import annotations

from collections.abc import Sequence

from packageurl import PackageURL

from envrepo.errors import EnvrepoError, Problem
from envrepo.index.reference import parse, release
from envrepo.inputs.sources import PUBLISHED_LOCK, LockInput
from envrepo.lock.files import split
from envrepo.lock.request import Request
from envrepo.repo.paths import read_inside
from envrepo.repo.spec import Spec, python_agrees

VERSION_LINE = "# published: "
PRIVATE_LINE = "# private: "


def _private_checksum(purl: str) -> str | None:
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return None
    checksum = (parsed.qualifiers or {}).get("checksum") if parsed.type == "generic" else None
    return str(checksum) if isinstance(checksum, str) and checksum.startswith("sha256:") else None


def tool_version() -> str:
    return "envrepo index format 1"


def resolve(spec: Spec, item: LockInput, ancestors: Sequence[Spec], request: Request) -> str:
    from envrepo.index.paths import version_path
    from envrepo.index.read import Index

    reference, location = spec.base.value, spec.base.index or ""
    try:
        index = Index(location)
        wanted = parse(reference)
        entry = release(index.environment(wanted.name), wanted)
        version = index.read(version_path(wanted.name, int(entry["number"])))
    except EnvrepoError as error:
        raise EnvrepoError(
            Problem(spec.spec_display, "base.published", f"{reference}: {error.lines[0]}")
        ) from None
    if not python_agrees(str(entry["python"]), spec.python) and entry["python"] != spec.python:
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "python",
                f"{spec.python!r} differs from python {entry['python']} of {reference}; "
                "make them the same",
            )
        )
    installed = ((version or {}).get("packages") or {}).get("pip", {})
    pins = sorted(f"{name}=={package['version']}\n" for name, package in installed.items())
    # Its private wheels, as the index names them (a generic package of the file): their names
    # are never asked of a package index when this environment is locked.
    pins += sorted(
        f"{PRIVATE_LINE}{name}=={package['version']} {checksum}\n"
        for name, package in installed.items()
        if (checksum := _private_checksum(str(package.get("purl", "")))) is not None
    )
    return (
        f"{entry['image']}\n"
        f"{VERSION_LINE}{reference} hash {entry['hash']} from {location}\n" + "".join(pins)
    )


def image(spec: Spec, lock: LockInput) -> str:
    """The published base's image by digest, as its lock recorded it."""
    return _body(spec, lock).splitlines()[0].strip()


def recorded(spec: Spec, lock: LockInput) -> tuple[str, int]:
    """The published base's name and version as its lock recorded them."""
    for line in _body(spec, lock).splitlines():
        if line.startswith(VERSION_LINE):
            written = parse(line.removeprefix(VERSION_LINE).split()[0])
            if written.number is not None:
                return written.name, written.number
    raise EnvrepoError(
        Problem(
            f"{spec.display}/{PUBLISHED_LOCK}",
            "",
            f"names no version; run envrepo lock {spec.name}",
        )
    )


def pins(spec: Spec, lock: LockInput) -> list[str]:
    """The published base's pip packages as `name==version` lines."""
    return [line for line in _body(spec, lock).splitlines()[1:] if line and line[0] != "#"]


def private(spec: Spec, lock: LockInput) -> list[tuple[str, str]]:
    """The published base's private wheels as (name, version)."""
    found = []
    for line in _body(spec, lock).splitlines():
        # A line edited by hand to something else is no pin: the lock is stale, and
        # `lock --check` says so.
        name, equals, version = line.removeprefix(PRIVATE_LINE).partition(" ")[0].partition("==")
        if line.startswith(PRIVATE_LINE) and name and equals and version:
            found.append((name, version))
    return found


def _body(spec: Spec, lock: LockInput) -> str:
    shown = f"{spec.display}/{PUBLISHED_LOCK}"
    if not lock.lock.is_file():
        raise EnvrepoError(Problem(shown, "", f"is missing; run envrepo lock {spec.name}"))
    return split(read_inside(lock.lock, spec.folder, shown).decode("utf-8", errors="replace"))[1]
