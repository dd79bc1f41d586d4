"""Lock files: where they live, the header that records their inputs, and staleness.

A lock's header records the digest of everything it was made from (the input files, the
private wheels, the target, and the locks of the environments it is built on), so staleness
is found by reading files, never by resolving again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envrepo.errors import EnvrepoError, Problem
from envrepo.repo.digest import file_sha256, json_sha256
from envrepo.repo.spec import Spec

FORMAT = "1"
PIP_LOCK = "requirements.lock"
IMAGE_LOCK = "base-image.lock"
_HEADER_KEYS = ("envrepo-lock-format", "input-digest", "target", "tools")

Parsed = Mapping[str, Sequence[Path]]


@dataclass(frozen=True)
class LockInput:
    """One lock of an environment: the field that asks for it, its main source, its file."""

    field: str
    source: Path
    lock: Path

    def lock_display(self, spec: Spec) -> str:
        return f"{spec.display}/{self.lock.relative_to(spec.folder).as_posix()}"


def lock_path(source: Path) -> Path:
    return source.with_suffix(".lock")


def wheel_files(spec: Spec) -> list[Path]:
    if spec.wheels is None or not (spec.folder / spec.wheels).is_dir():
        return []
    return sorted((spec.folder / spec.wheels).glob("*.whl"))


def has_conda_pip(spec: Spec) -> bool:
    """Whether the conda input has a pip: section, which is locked with the pip input."""
    if spec.conda is None:
        return False
    from envrepo.errors import EnvrepoError
    from envrepo.inputs import conda as conda_input

    try:
        return bool(conda_input.load(spec.folder / spec.conda, spec.conda)[0].pip)
    except EnvrepoError:
        return False


def lock_inputs(spec: Spec) -> list[LockInput]:
    """The locks `spec` needs: conda packages in conda.lock; pip requirements, the conda
    input's pip: list and private wheels together in one pip lock."""
    inputs = []
    if spec.pip is not None:
        source = spec.folder / spec.pip
        inputs.append(LockInput("pip", source, lock_path(source)))
    elif wheel_files(spec) or has_conda_pip(spec):
        source = spec.folder / (spec.wheels or spec.conda or "")
        inputs.append(LockInput("pip", source, spec.folder / PIP_LOCK))
    if spec.conda is not None:
        source = spec.folder / spec.conda
        inputs.append(LockInput("conda", source, lock_path(source)))
    if spec.base.kind == "image" and "@sha256:" not in spec.base.value:
        inputs.append(
            LockInput("image", spec.folder / "environment.yaml", spec.folder / IMAGE_LOCK)
        )
    return inputs


def pip_lock(spec: Spec) -> Path | None:
    return next((i.lock for i in lock_inputs(spec) if i.field == "pip"), None)


def input_files(spec: Spec, item: LockInput, parsed: Parsed | None = None) -> Sequence[Path]:
    """Every file in the folder that a lock of `item` is made from, resolved."""
    files: list[Path] = []
    if item.field == "pip" and spec.pip is not None:
        if parsed is not None and "pip" in parsed:
            files += parsed["pip"]
        else:
            # Imported here: hashing needs lock paths but never parses requirements, and the
            # requirement parser is a noticeable part of a command's start-up.
            from envrepo.inputs import requirements

            source = spec.folder / spec.pip
            files += requirements.parse(source, spec.folder, Path(spec.display)).files
    if spec.conda is not None and (item.field == "conda" or has_conda_pip(spec)):
        files.append((spec.folder / spec.conda).resolve())
    if item.field == "pip":
        files += wheel_files(spec)
    return files


def target(spec: Spec) -> dict[str, object]:
    return {
        "python": spec.python,
        "platforms": sorted(spec.platforms),
        "exclude_newer": spec.exclude_newer,
    }


def target_line(spec: Spec) -> str:
    line = f"python {spec.python}, {' '.join(sorted(spec.platforms))}"
    return f"{line}, packages up to {spec.exclude_newer}" if spec.exclude_newer else line


def input_digest(
    spec: Spec, item: LockInput, ancestors: Sequence[Spec], parsed: Parsed | None = None
) -> str:
    """What a lock of `item` is made from: its files, the target, and the base's locks."""
    root = spec.folder
    files = {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in input_files(spec, item, parsed)
        if path.is_file()
    }
    bases = {}
    for ancestor in ancestors:
        base_lock = next((i.lock for i in lock_inputs(ancestor) if i.field == item.field), None)
        if base_lock is not None and base_lock.is_file():
            bases[ancestor.name] = file_sha256(base_lock)
    document: dict[str, object] = {
        "kind": item.field,
        "files": files,
        "target": target(spec),
        "bases": bases,
    }
    if item.field == "image":
        document = {"kind": "image", "reference": spec.base.value}
    return "sha256:" + json_sha256(document)


def require(spec: Spec, field: str, lock: Path) -> Path:
    """`lock`, which a build reads; a clear error naming the command to run when it is missing."""
    if not lock.is_file():
        raise EnvrepoError(
            Problem(
                spec.spec_display, field, f"{lock.name} is missing; run envrepo lock {spec.name}"
            )
        )
    return lock


def read_header(lock: Path) -> dict[str, str]:
    """The `# key: value` lines at the top of a lock file."""
    header: dict[str, str] = {}
    with lock.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            key, sep, value = line[1:].strip().partition(": ")
            if sep and key in _HEADER_KEYS:
                header[key] = value.strip()
    return header


def split(text: str) -> tuple[list[str], str]:
    """A lock's header lines (through `# tools:`) and its body."""
    lines = text.splitlines(keepends=True)
    end = next((i + 1 for i, line in enumerate(lines) if line.startswith("# tools:")), 0)
    return [line.rstrip("\n") for line in lines[:end]], "".join(lines[end:])


def render(spec: Spec, item: LockInput, digest: str, body: str, tools: str) -> str:
    header = [
        f"# Generated by `envrepo lock {spec.name}`; do not edit.",
        f"# envrepo-lock-format: {FORMAT}",
        f"# input-digest: {digest}",
        f"# target: {target_line(spec)}",
        f"# tools: {tools}",
    ]
    return "\n".join(header) + "\n" + body.lstrip("\n")


def check(spec: Spec, ancestors: Sequence[Spec], parsed: Parsed | None = None) -> list[Problem]:
    """Missing or stale locks of `spec`, found without resolving anything."""
    problems = []
    for item in lock_inputs(spec):
        run = f"run envrepo lock {spec.name}"
        if not item.lock.is_file():
            what = item.source.name if item.source != spec.folder else "its inputs"
            field = item.field
            if item.field == "image":
                what, field = f"{spec.base.value} is not resolved to a digest and", "base.image"
            problems.append(
                Problem(
                    spec.spec_display,
                    field,
                    (f"{what} has no lock ({item.lock.name} is missing); {run}"),
                )
            )
            continue
        header = read_header(item.lock)
        if header.get("envrepo-lock-format") != FORMAT or "input-digest" not in header:
            problems.append(
                Problem(
                    item.lock_display(spec),
                    "",
                    (f"is not an envrepo lock of format {FORMAT} (no header); {run}"),
                )
            )
        elif header["input-digest"] != input_digest(spec, item, ancestors, parsed):
            problems.append(
                Problem(
                    item.lock_display(spec),
                    "",
                    (
                        f"is stale: its inputs, the target ({target_line(spec)}) or a base "
                        f"environment's lock changed since it was locked; {run}"
                    ),
                )
            )
    return problems
