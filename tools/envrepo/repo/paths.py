"""Paths a spec names: relative to its folder, and never leading out of it."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from envrepo.errors import Problem


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
