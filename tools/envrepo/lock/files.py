"""Lock files: the header that records their inputs, their text, and staleness.

A lock's header records the digest of everything it was made from (the input files, the
private wheels, the target, and the locks of the environments it is built on), so staleness
is found by reading files, never by resolving again.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs.sources import LockInput, has_conda_pip, lock_inputs, wheel_files
from envrepo.repo.digest import canonical_bytes, file_sha256, json_sha256
from envrepo.repo.paths import confinement, read_inside
from envrepo.repo.spec import Spec, indexes_document

FORMAT = "2"  # 2: the header records the body's digest
_HEADER_KEYS = ("envrepo-lock-format", "input-digest", "body-digest", "target", "tools")

Parsed = Mapping[str, Sequence[Path]]


def input_files(spec: Spec, item: LockInput, parsed: Parsed | None = None) -> Sequence[Path]:
    """Every file in the folder that a lock of `item` is made from, resolved."""
    files: list[Path] = []
    for named in (spec.pip, spec.conda):
        leaks = None if named is None else confinement(spec.folder / named, spec.folder)
        if leaks is not None:
            raise EnvrepoError(Problem(f"{spec.display}/{named}", "", leaks))
    if item.field == "pip" and spec.pip is not None:
        if parsed is not None and "pip" in parsed:
            files += parsed["pip"]
        else:
            # Imported here: the requirement parser is a noticeable part of a command's
            # start-up, and `list` imports this module without reading any requirements.
            from envrepo.inputs import requirements

            source = spec.folder / spec.pip
            files += requirements.parse(source, spec.folder, Path(spec.display)).files
    if spec.conda is not None and (item.field == "conda" or has_conda_pip(spec)):
        files.append((spec.folder / spec.conda).resolve())
    if item.field == "pip":
        files += wheel_files(spec)
    return files


def target(spec: Spec) -> dict[str, object]:
    found: dict[str, object] = {
        "python": spec.python,
        "platforms": sorted(spec.platforms),
        "exclude_newer": spec.exclude_newer,
    }
    if spec.indexes:
        found["indexes"] = indexes_document(spec)
    return found


def target_line(spec: Spec) -> str:
    line = f"python {spec.python}, {' '.join(sorted(spec.platforms))}"
    return f"{line}, packages up to {spec.exclude_newer}" if spec.exclude_newer else line


def input_digest(
    spec: Spec, item: LockInput, ancestors: Sequence[Spec], parsed: Parsed | None = None
) -> str:
    """What a lock of `item` is made from: its files, the target, and the base's locks."""
    root = spec.folder
    files = {}
    for path in input_files(spec, item, parsed):
        if os.path.lexists(path):
            relative = path.relative_to(root).as_posix()
            files[relative] = file_sha256(path, root, f"{spec.display}/{relative}")
    bases = {}
    for ancestor in ancestors:
        base_lock = next((i.lock for i in lock_inputs(ancestor) if i.field == item.field), None)
        if base_lock is not None and os.path.lexists(base_lock):
            shown = f"{ancestor.display}/{base_lock.name}"
            bases[ancestor.name] = file_sha256(base_lock, ancestor.folder, shown)
    document: dict[str, object] = {
        "kind": item.field,
        "files": files,
        "target": target(spec),
        "bases": bases,
    }
    published = next((i for i in lock_inputs(spec) if i.field == "published"), None)
    if item.field == "pip" and published is not None and os.path.lexists(published.lock):
        shown = f"{spec.display}/{published.lock.name}"
        bases["published"] = file_sha256(published.lock, spec.folder, shown)
    if item.field == "image":
        document = {"kind": "image", "reference": spec.base.value}
    if item.field == "published":
        document = {"kind": "published", "reference": spec.base.value, "index": spec.base.index}
    return "sha256:" + json_sha256(document)


def header_fields(header: Sequence[str]) -> dict[str, str]:
    """The `# key: value` lines of a lock's header, by key."""
    fields: dict[str, str] = {}
    for line in header:
        key, sep, value = line[1:].strip().partition(": ")
        if sep and key in _HEADER_KEYS:
            fields[key] = value.strip()
    return fields


def split(text: str) -> tuple[list[str], str]:
    """A lock's header lines (through `# tools:`) and its body."""
    lines = text.splitlines(keepends=True)
    end = next((i + 1 for i, line in enumerate(lines) if line.startswith("# tools:")), 0)
    return [line.rstrip("\n") for line in lines[:end]], "".join(lines[end:])


def body_digest(body: str) -> str:
    """What the header records of the body: its sha256, line endings as git stores them."""
    return "sha256:" + hashlib.sha256(canonical_bytes(body.encode())).hexdigest()


def lock_text(spec: Spec, item: LockInput, digest: str, body: str, tools: str) -> str:
    body = body.lstrip("\n")
    header = [
        f"# Generated by `envrepo lock {spec.name}`; do not edit.",
        f"# envrepo-lock-format: {FORMAT}",
        f"# input-digest: {digest}",
        f"# body-digest: {body_digest(body)}",
        f"# target: {target_line(spec)}",
        f"# tools: {tools}",
    ]
    return "\n".join(header) + "\n" + body


def _twice(body: str) -> tuple[str, int, int] | None:
    """A package a pip lock body names twice for the same markers: (name, first line, second
    line), counted in the body."""
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(body.splitlines(), start=1):
        if line[:1] in ("", " ", "#"):
            continue
        requirement, _, marker = line.rstrip(" \\").partition(";")
        name = re.split(r"[=<>!~\[ ]", requirement.strip(), maxsplit=1)[0]
        key = (canonicalize_name(name), marker.strip())
        if key in seen:
            return name, seen[key], number
        seen[key] = number
    return None


def _body_problem(spec: Spec, item: LockInput, header: Sequence[str], body: str) -> str | None:
    """What makes a lock other than what envrepo wrote: an old format, a body edited since."""
    fields = header_fields(header)
    written = fields.get("envrepo-lock-format")
    if written is None or "input-digest" not in fields:
        return f"is not an envrepo lock of format {FORMAT} (no header)"
    if written != FORMAT:
        return f"was written in lock format {written}, and this envrepo reads format {FORMAT}"
    if fields.get("body-digest") != body_digest(body):
        return "is not what its header records: its packages were edited by hand"
    twice = _twice(body) if item.field == "pip" else None
    if twice is not None:
        name, first, second = twice
        offset = len(header)
        return (
            f"names {name} twice (lines {first + offset} and {second + offset}), which would "
            "install two versions of it"
        )
    return None


def stale_locks(
    spec: Spec, ancestors: Sequence[Spec], parsed: Parsed | None = None
) -> list[Problem]:
    """Missing, doctored or stale locks of `spec`, found without resolving anything."""
    found = (stale(spec, item, ancestors, parsed) for item in lock_inputs(spec))
    return [problem for problem in found if problem is not None]


def stale(
    spec: Spec, item: LockInput, ancestors: Sequence[Spec], parsed: Parsed | None = None
) -> Problem | None:
    """Why the lock of `item` is missing, doctored or stale; None when it is current."""
    run = f"run envrepo lock {spec.name}"
    if not item.lock.is_file():
        what = item.source.name if item.source != spec.folder else "its inputs"
        field = item.field
        if item.field == "image":
            what, field = f"{spec.base.value} is not resolved to a digest and", "base.image"
        return Problem(
            spec.spec_display, field, f"{what} has no lock ({item.lock.name} is missing); {run}"
        )
    shown = item.lock_display(spec)
    text = read_inside(item.lock, spec.folder, shown).decode("utf-8", errors="replace")
    header, body = split(text)
    wrong = _body_problem(spec, item, header, body)
    if wrong is not None:
        return Problem(shown, "", f"{wrong}; {run}")
    if header_fields(header)["input-digest"] != input_digest(spec, item, ancestors, parsed):
        return Problem(
            shown,
            "",
            (
                f"is stale: its inputs, the target ({target_line(spec)}) or a base "
                f"environment's lock changed since it was locked; {run}"
            ),
        )
    return None
