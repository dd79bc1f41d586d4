"""The pip locker: uv resolves the environment's pip requirements, its conda input's pip:
list and its private wheels for the environment's target, with hashes, on top of the pins
of the environments it is built on."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs import requirements
from envrepo.inputs import wheels as wheelfile
from envrepo.inputs.sources import LockInput, lock_inputs, pip_lock, wheel_files
from envrepo.lock import sdists, uv
from envrepo.lock.files import split
from envrepo.lock.request import Request
from envrepo.repo.paths import read_inside
from envrepo.repo.spec import Spec


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    owner: str
    lock: str


def entries(body: str) -> list[tuple[str, str]]:
    """(first line, whole text) of every requirement in a lock body."""
    result: list[tuple[str, str]] = []
    for line in body.splitlines(keepends=True):
        if line[:1] not in ("", " ", "#", "\n"):
            result.append((line.rstrip(" \\\n"), line))
        elif result:
            result[-1] = (result[-1][0], result[-1][1] + line)
    return result


def base_pins(ancestors: Sequence[Spec]) -> dict[str, Pin]:
    """Every package the base environments pinned, by canonical name."""
    pins: dict[str, Pin] = {}
    for ancestor in ancestors:
        path = pip_lock(ancestor)
        if path is None or not os.path.lexists(path):
            continue
        shown = f"{ancestor.display}/{path.name}"
        text = read_inside(path, ancestor.folder, shown).decode("utf-8", errors="replace")
        for first, _ in entries(split(text)[1]):
            try:
                requirement = Requirement(first)
            except InvalidRequirement:
                continue
            version = next((s.version for s in requirement.specifier), "")
            pins.setdefault(
                requirements.canonical(requirement.name),
                Pin(requirement.name, version, ancestor.name, shown),
            )
    return pins


def published_pins(spec: Spec) -> dict[str, Pin]:
    """The pip packages of a published base, as its lock recorded them."""
    if spec.base.kind != "published":
        return {}
    from envrepo.lock import published

    lock = next(i for i in lock_inputs(spec) if i.field == "published")
    found = {}
    for line in published.pins(spec, lock):
        name, _, version = line.partition("==")
        found[requirements.canonical(name)] = Pin(
            name, version, spec.base.value, f"{spec.display}/{lock.lock.name}"
        )
    return found


def _private_wheels(spec: Spec) -> list[wheelfile.Wheel]:
    return [
        wheelfile.inspect(path, f"{spec.display}/{path.relative_to(spec.folder).as_posix()}")
        for path in wheel_files(spec)
    ]


def _published_private(spec: Spec) -> list[tuple[str, str]]:
    if spec.base.kind != "published":
        return []
    from envrepo.lock import published

    return published.private(spec, next(i for i in lock_inputs(spec) if i.field == "published"))


def _conflicts(spec: Spec, direct: list[tuple[str, Requirement]], pins: dict[str, Pin]) -> None:
    for where, requirement in direct:
        pin = pins.get(requirements.canonical(requirement.name))
        if pin is None or requirement.specifier.contains(pin.version, prereleases=True):
            continue
        raise EnvrepoError(
            Problem(
                where,
                requirement.name,
                (
                    f"{spec.name} asks for {requirement} but its base environment {pin.owner} pinned "
                    f"{pin.name}=={pin.version} ({pin.lock}); a derived environment keeps its base's "
                    f"pins: change the requirement, or change and re-lock {pin.owner}"
                ),
            )
        )


def _direct(spec: Spec) -> tuple[list[tuple[str, Requirement]], list[str]]:
    """The requirements the environment names itself (where, requirement), and the extra
    requirement lines that are not in its pip file (conda pip: list, private wheels)."""
    direct: list[tuple[str, Requirement]] = []
    extra: list[str] = []
    if spec.pip is not None:
        parsed = requirements.parse(spec.folder / spec.pip, spec.folder, Path(spec.display))
        direct += [
            (f"{line.display}: line {line.number}", line.requirement)
            for line in parsed.lines
            if line.requirement is not None and not line.constraint
        ]
    if spec.conda is not None:
        # rattler, which reads match specs, is loaded only for an environment with conda input.
        from envrepo.inputs import conda as conda_input

        shown = f"{spec.display}/{spec.conda}"
        for entry in conda_input.read_input(spec.folder / spec.conda, shown)[0].pip:
            requirement, found = requirements.check_entry(entry)
            errors = [message for severity, message in found if severity == "error"]
            if errors:
                raise EnvrepoError(Problem(shown, "pip", f"{entry}: {errors[0]}"))
            if requirement is not None:
                direct.append((shown, requirement))
                extra.append(entry)
    return direct, extra


def _target_options(spec: Spec) -> list[str]:
    options = ["--exclude-newer", spec.exclude_newer] if spec.exclude_newer else []
    if len(spec.platforms) == 1:
        return [*spec.target.uv_options(), *options]
    # One resolution that holds for every platform, with markers where they differ.
    return ["--python-version", spec.python, *options, "--universal"]


def _files(spec: Spec, pins: Sequence[str], sources: list[str], work: Path) -> list[sdists.Source]:
    """The pins that have no wheel for the image, with their sdists, from the files uv lists
    for each. Pinned and without dependencies, uv needs no package's metadata for this."""
    listed = work / "pins.txt"
    listed.write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
    pylock = work / "pylock.toml"
    command = uv.compile_command([str(listed)], pylock, ["--no-deps", *sources], lists_sources=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvrepoError(
            Problem(
                spec.display,
                "",
                f"the files of the locked versions cannot be listed: {uv.error_line(done.stderr)}",
            )
        )
    return sdists.only_source(spec, pylock)


# The project uv is given beside the requirements when the spec names indexes: uv pins a
# package to an index (and keeps an explicit index to its packages) for a project only.
_INDEX_PROJECT = "envrepo-index-pins"
FROM_INDEX = "    # from index "


def _index_project(spec: Spec, direct: Sequence[tuple[str, Requirement]], work: Path) -> Path:
    """A pyproject.toml declaring the spec's indexes, and each pinned package as a
    dependency (with no version: the requirements give it) whose source is its index."""
    named = {requirements.canonical(r.name) for _, r in direct}
    pinned: dict[str, str] = {}
    for number, index in enumerate(spec.indexes):
        for package in index.packages:
            if requirements.canonical(package) not in named:
                raise EnvrepoError(
                    Problem(
                        spec.spec_display,
                        f"indexes[{number}].packages",
                        f"{package} is not a requirement of {spec.name}, and an index serves "
                        "the packages an environment names itself; add it to the "
                        "requirements, or drop it here",
                    )
                )
            pinned[package] = index.name
    lines = [
        "[project]",
        f'name = "{_INDEX_PROJECT}"',
        'version = "0"',
        f"dependencies = {json.dumps(sorted(pinned))}",
    ]
    for index in spec.indexes:
        lines += [
            "[[tool.uv.index]]",
            f"name = {json.dumps(index.name)}",
            f"url = {json.dumps(index.url)}",
            f"explicit = {'true' if index.explicit else 'false'}",
        ]
    lines.append("[tool.uv.sources]")
    lines += [f"{json.dumps(name)} = {{ index = {json.dumps(i)} }}" for name, i in pinned.items()]
    project = work / "indexes" / "pyproject.toml"
    project.parent.mkdir()
    project.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return project


def _sources_noted(body: str, spec: Spec) -> str:
    """The lock body with each pin from one of the spec's indexes noted by the index's name,
    and nothing else of uv's index annotations: the URLs of a user's own indexes (a mirror,
    a PyPI proxy, the private wheels' scratch folder) do not belong in the repository."""
    names = {index.url.rstrip("/"): index.name for index in spec.indexes}
    kept: list[str] = []
    for line in body.splitlines(keepends=True):
        text = line.strip()
        if text.startswith("# from "):
            name = names.get(text.removeprefix("# from ").rstrip("/"))
            if name is not None:
                kept.append(f"{FROM_INDEX}{name}\n")
            continue
        if f"{_INDEX_PROJECT} (" in text:
            continue
        kept.append(line)
    # A "# via" block left with one line reads as uv writes a single one.
    merged: list[str] = []
    number = 0
    while number < len(kept):
        line, follows = kept[number], [*kept[number + 1 : number + 3], ""]
        listed = [x.startswith("    #   ") for x in follows]
        if line.strip() == "# via" and listed[0] and not listed[1]:
            merged.append(f"    # via {follows[0].strip().removeprefix('#').strip()}\n")
            number += 2
            continue
        merged.append(line)
        number += 1
    return "".join(merged)


# More rounds than any real chain of source-only dependencies: each round builds at least one.
_BUILD_ROUNDS = 20


def resolve(spec: Spec, item: LockInput, ancestors: Sequence[Spec], request: Request) -> str:
    """The lock body: exact versions and sha256 hashes of every distribution the target can
    install, less what the base environments already pinned. Nothing is ever built here: a
    pin that has only source is named, or with --build-wheels built in the base image into a
    private wheel and resolved again, until every pin has a wheel."""
    for _ in range(_BUILD_ROUNDS):
        with tempfile.TemporaryDirectory(prefix="envrepo-lock-") as scratch:
            work = Path(scratch)
            body, sources, options = _resolve_once(spec, item, ancestors, request, work)
            if not sources:
                return body
            if request.build_wheels is None:
                raise sdists.remedy(spec, sources, item.lock_display(spec))
            request.build_wheels(
                spec, ancestors, sources, options, request.registry, work, item.lock_display(spec)
            )
    raise EnvrepoError(
        Problem(
            item.lock_display(spec),
            "",
            f"more than {_BUILD_ROUNDS} rounds of source-only packages were built and more "
            "remain; build their wheels into the environment's wheels folder",
        )
    )


def _resolve_once(
    spec: Spec, item: LockInput, ancestors: Sequence[Spec], request: Request, work: Path
) -> tuple[str, list[sdists.Source], list[str]]:
    """(the lock body, the pins with only source, the options that find files for the
    target) of one resolution that builds nothing."""
    direct, extra = _direct(spec)
    wheels = _private_wheels(spec)
    # The base environments' private names resolve to exactly their files, from the same
    # first index: never asked of a package index, where anyone may register them.
    inherited = [wheel for base in ancestors for wheel in _private_wheels(base)]
    pins = base_pins(ancestors) | published_pins(spec)
    _conflicts(spec, direct, pins)
    published_private = _published_private(spec)
    extra += [wheel.requirement for wheel in wheels]
    inputs = [Path(spec.pip).as_posix()] if spec.pip is not None else []
    if extra:
        inputs.append("-")
    annotate = []
    if spec.indexes:
        inputs.append(str(_index_project(spec, direct, work)))
        annotate = ["--emit-index-annotation"]
    constraints = work / "base-pins.txt"
    constraints.write_text("".join(f"{p.name}=={p.version}\n" for p in pins.values()))
    output = work / "requirements.lock"
    before = ""
    if item.lock.is_file():
        kept = read_inside(item.lock, spec.folder, item.lock_display(spec))
        before = split(kept.decode("utf-8", errors="replace"))[1]
    if before and not request.upgrade_all:
        # uv prefers the versions in an existing output file: locking again keeps pins.
        output.write_text(before)
    sources = _target_options(spec)
    stand_ins = [
        wheelfile.placeholder(name, version, work / "published-private")
        for name, version in published_private
    ]
    if wheels or inherited or stand_ins:
        url = wheelfile.write_index([*wheels, *inherited, *stand_ins], work / "private")
        sources += ["--index", f"private-wheels={url}", "--index-strategy", "first-index"]
    options = ["-c", str(constraints), *sources, *annotate, "--generate-hashes", "--no-header"]
    options += [option for package in request.upgrade for option in ("--upgrade-package", package)]
    # Resolving never runs a package's code on this machine: uv builds nothing.
    command = uv.compile_command(inputs, output, options)
    done = subprocess.run(
        command,
        cwd=spec.folder,
        input="".join(f"{line}\n" for line in extra),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        refused = sdists.refused(done.stderr)
        if refused:
            pinned = [f"{s.name}=={s.version}" for s in refused]
            lookup = [*sources, *(f"--index={i.name}={i.url}" for i in spec.indexes)]
            return "", _files(spec, pinned, lookup, work) or refused, sources
        raise EnvrepoError(
            Problem(
                item.lock_display(spec),
                "",
                (
                    f"{spec.name} cannot be locked for python {spec.python} on "
                    f"{', '.join(spec.platforms)}: {uv.error_line(done.stderr)}; fix the requirement"
                ),
            )
        )
    body = _sources_noted(output.read_text(encoding="utf-8"), spec)
    # Only the pins this lock adds: the others were looked at when they were locked (the
    # base's in the base's lock).
    known = {first for first, _ in entries(before)}
    added = [
        first
        for first, _ in entries(body)
        if first not in known and requirements.canonical(Requirement(first).name) not in pins
    ]
    # For one platform uv's --no-build resolution has already refused a pin with no wheel for
    # the target (it checks the tags); a universal one checks no platform's, so the files each
    # added pin has are listed in a second call.
    universal = len(spec.platforms) > 1
    source_only = _files(spec, added, sources, work) if added and universal else []
    if source_only:
        return "", source_only, sources
    own = [
        text
        for first, text in entries(body)
        if requirements.canonical(Requirement(first).name) not in pins
    ]
    return "".join(own).replace(str(constraints), "base environments' pins"), [], sources
