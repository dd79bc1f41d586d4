"""Paths a spec names and files the build reads: relative to the environment's folder, never
leading out of it, and regular files or folders (never a device, FIFO or socket, which could
block a reader or hand it endless bytes)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from envrepo.errors import EnvrepoError, Problem

LEADS_OUT = (
    "is a symlink that leads outside the environment's folder; copy the file into the folder"
)


def inside(path: Path, folder: Path) -> bool:
    """Whether `path`, with every symlink followed, lies within `folder`."""
    return path.resolve().is_relative_to(folder.resolve())


def _stays_inside(folder: Path, parts: tuple[str, ...]) -> bool:
    # Without .. only a symlink can lead out, so a full resolve is needed only past one.
    current = folder
    for part in parts:
        current = current / part
        if current.is_symlink():
            return inside(folder / Path(*parts), folder)
    return True


def check_relative(value: str, folder: Path, display: str, field: str) -> Problem | None:
    """A problem when `value` is absolute, climbs with .., or resolves outside `folder`."""
    pure = PurePosixPath(value)
    if pure.is_absolute() or "\\" in value:
        return Problem(
            display,
            field,
            (f"{value!r} is an absolute path; write a path relative to the environment's folder"),
        )
    if ".." in pure.parts:
        return Problem(
            display,
            field,
            (f"{value!r} climbs out with ..; keep the file inside the environment's folder"),
        )
    if not _stays_inside(folder, pure.parts):
        return Problem(
            display,
            field,
            (
                f"{value!r} is a symlink that leads outside the environment's folder; "
                "copy the file into the folder"
            ),
        )
    return None


def special_kind(mode: int) -> str | None:
    """What a file of `mode` is when it is neither a regular file nor a folder."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def confinement(path: Path, folder: Path) -> str | None:
    """What is wrong with reading `path` as part of `folder` (resolved): None when it is a
    regular file or folder inside it (symlinks followed) or does not exist (other rules say
    so)."""
    # Most paths have no symlink between the folder and them: a few lstat calls tell, where
    # resolving walks every folder up to the root.
    full, top = os.fspath(path), os.fspath(folder)
    if not full.startswith(top + "/"):
        return _resolved_confinement(path, folder)
    current = top
    mode = 0
    for part in full[len(top) + 1 :].split("/"):
        current = f"{current}/{part}"
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return None
        except OSError as error:
            return f"cannot be read ({error.strerror}); check its permissions"
        if stat.S_ISLNK(mode):
            return _resolved_confinement(path, folder)
    kind = special_kind(mode)
    return None if kind is None else f"is {kind}, not a regular file; replace it with a file"


def _resolved_confinement(path: Path, folder: Path) -> str | None:
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        return None
    except RuntimeError:
        return "is a symlink loop; replace it with the file"
    except OSError as error:
        return f"cannot be read ({error.strerror}); check its permissions"
    if not real.is_relative_to(folder.resolve()):
        return LEADS_OUT
    kind = special_kind(real.stat().st_mode)
    if kind is not None:
        return f"is {kind}, not a regular file; replace it with a file"
    return None


def confined_tree(top: Path, folder: Path, shown: str) -> Iterator[Problem]:
    """A problem for `top` and for every entry below it that leads out of `folder` or is no
    regular file or folder; symlinked folders are checked, not walked into."""
    found = confinement(top, folder)
    if found is not None:
        yield Problem(shown, "", found)
        return
    if not top.is_dir():
        return
    for parent, folders, files in os.walk(top):
        for name in sorted([*folders, *files]):
            path = Path(parent) / name
            found = confinement(path, folder)
            if found is not None:
                yield Problem(f"{shown}/{path.relative_to(top).as_posix()}", "", found)


def read_inside(path: Path, folder: Path, shown: str) -> bytes:
    """The bytes of `path`, a regular file inside `folder`; an error naming it otherwise."""
    found = confinement(path, folder)
    if found is not None:
        raise EnvrepoError(Problem(shown, "", found))
    return path.read_bytes()
