"""The copy of envrepo's schemas that a repository keeps for its editors: written by `envrepo
init`, kept at the installed envrepo's schemas by `envrepo validate`, and named by the
`$schema` comment of every spec that `scaffold` writes."""

from __future__ import annotations

from pathlib import Path

from envrepo.repo import schemas
from envrepo.repo.config import Repository
from envrepo.repo.files import write_all

# This project's own checkout reads the schemas where they ship.
SHIPPED = Path("tools/envrepo/repo/schemas")


def write(root: Path) -> list[Path]:
    """The copy made or brought up to date; the files that changed."""
    folder = root / schemas.COPY_FOLDER
    folder.mkdir(exist_ok=True)
    return write_all({folder / name: schemas.text(name) for name in schemas.COPIED})


def refresh(root: Path) -> list[Path]:
    """The copy brought up to date where the repository keeps one; the files that changed."""
    return write(root) if (root / schemas.COPY_FOLDER).is_dir() else []


def schema_comment(repo: Repository, folder: Path, name: str = schemas.ENVIRONMENT) -> str | None:
    """The editor's schema hint for a file in `folder`: the repository's copy, else the
    schemas where they ship in envrepo's own checkout, else none."""
    for where in (Path(schemas.COPY_FOLDER), SHIPPED):
        if (repo.root / where / name).is_file():
            up = "../" * len(folder.relative_to(repo.root).parts)
            return f"# yaml-language-server: $schema={up}{where.as_posix()}/{name}"
    return None
