"""Writing files and folders so that a reader or a crash never leaves half of one."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path


def write_text(path: Path, text: str) -> bool:
    """Replace `path` atomically when its text differs; whether it changed."""
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return False
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_bytes(text.encode("utf-8"))
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return True


def write_all(changes: Mapping[Path, str]) -> list[Path]:
    """Write several files, each atomically, after every text is ready; those that changed."""
    return [path for path, text in changes.items() if write_text(path, text)]


def create_folder(folder: Path, files: Mapping[str, str | bytes]) -> None:
    """Create `folder` holding `files`; it appears whole, or not at all."""
    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    try:
        for relative, content in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            data = content.encode("utf-8") if isinstance(content, str) else content
            target.write_bytes(data)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def cache_dir(kind: str) -> Path:
    """envrepo's cache folder for `kind` (layers, apt lists, conda files), made on demand."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "envrepo" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the lock file `path` for the block: a second holder waits its turn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
