"""Canonical digests: the same bytes on every machine, whatever the checkout did to them."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

from envrepo.repo.paths import read_inside

# git decides text-or-binary by a NUL byte in the first 8000 bytes; using the same rule means
# a CRLF checkout (core.autocrlf) hashes like an LF one, and binary files are never rewritten.
_SNIFF = 8000


def canonical_bytes(data: bytes) -> bytes:
    if b"\0" in data[:_SNIFF]:
        return data
    return data.replace(b"\r\n", b"\n")


# Digests already taken in this process, by the file's identity and state: validate, hash and
# list read an ancestor's lock once for each environment below it.
_TAKEN: dict[tuple[Path, Path, int, int, int, int], str] = {}


def file_sha256(path: Path, folder: Path, shown: str) -> str:
    """The sha256 of `path`, a regular file inside `folder`; `shown` names it in errors."""
    try:
        status = path.lstat()
    except OSError:
        status = None
    key = None
    if status is not None and stat.S_ISREG(status.st_mode):
        key = (path, folder, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
        if key in _TAKEN:
            return _TAKEN[key]
    digest = hashlib.sha256(canonical_bytes(read_inside(path, folder, shown))).hexdigest()
    if key is not None:
        _TAKEN[key] = digest
    return digest


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def json_sha256(value: object) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()
