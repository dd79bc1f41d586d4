"""Writing locks: each input kind has a locker, a function from (spec, input, bases, request)
to a lock body; this module runs them over environments, parents first."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs import sources
from envrepo.lock import files as lock
from envrepo.lock import pip as lock_pip
from envrepo.lock import uv
from envrepo.lock.request import Request
from envrepo.repo import graph
from envrepo.repo.files import write_text
from envrepo.repo.spec import Catalog, Spec, get


class Locker(Protocol):
    def __call__(
        self, spec: Spec, item: sources.LockInput, ancestors: Sequence[Spec], request: Request
    ) -> str: ...


def _pip() -> tuple[Locker, Callable[[], str]]:
    return lock_pip.resolve, uv.version


def _conda() -> tuple[Locker, Callable[[], str]]:
    # rattler takes a noticeable part of a command's start-up; only conda inputs need it.
    from envrepo.lock import conda as lock_conda

    return lock_conda.resolve, lock_conda.tool_version


def _image() -> tuple[Locker, Callable[[], str]]:
    from envrepo.lock import image as lock_image

    return lock_image.resolve, lock_image.tool_version


def _published() -> tuple[Locker, Callable[[], str]]:
    from envrepo.lock import published

    return published.resolve, published.tool_version


LOCKERS: Mapping[str, Callable[[], tuple[Locker, Callable[[], str]]]] = {
    "pip": _pip,
    "conda": _conda,
    "image": _image,
    "published": _published,
}


@dataclass
class Outcome:
    changed: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    failed: list[EnvrepoError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def lock_environment(
    spec: Spec, ancestors: Sequence[Spec], request: Request
) -> tuple[list[Path], list[Path]]:
    """Write every lock of `spec`: (changed, unchanged). Nothing is written when one fails."""
    rendered: list[tuple[Path, str]] = []
    unchanged: list[Path] = []
    # A published base's lock is read by the pip locker from disk: it is written first, and
    # put back as it was when a later lock fails.
    early: list[tuple[Path, bytes | None]] = []
    try:
        for item in sources.lock_inputs(spec):
            if _kept(spec, item, ancestors, request):
                unchanged.append(item.lock)
                continue
            resolve, version = LOCKERS[item.field]()
            body = resolve(spec, item, ancestors, request)
            digest = lock.input_digest(spec, item, ancestors)
            text = lock.lock_text(spec, item, digest, body, version())
            if item.lock.is_file():
                # Same inputs and same result: keep the file as it is, even if the tool's
                # version (the header's last line) moved, so that a re-lock with nothing
                # changed rewrites nothing.
                old_header, old_body = lock.split(item.lock.read_text(encoding="utf-8"))
                new_header, new_body = lock.split(text)
                if (old_header[:-1], old_body) == (new_header[:-1], new_body):
                    unchanged.append(item.lock)
                    continue
            if item.field == "published":
                early.append((item.lock, item.lock.read_bytes() if item.lock.is_file() else None))
                write_text(item.lock, text)
            rendered.append((item.lock, text))
    except BaseException:
        for path, previous in early:
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(previous)
        raise
    changed = [path for path, text in rendered if write_text(path, text) or path in dict(early)]
    return changed, unchanged + [path for path, _ in rendered if path not in changed]


def _kept(spec: Spec, item: sources.LockInput, ancestors: Sequence[Spec], request: Request) -> bool:
    """Whether a current pip lock is kept without resolving: with its inputs unchanged and
    nothing to upgrade, uv would keep every pin it has. A base image's tag and a published
    base's @latest move on their own, so those are always looked up again."""
    return (
        item.field == "pip"
        and not request.upgrade_all
        and not request.upgrade
        and lock.stale(spec, item, ancestors) is None
    )


Progress = Callable[[int], AbstractContextManager[Callable[[str], None]]]


def _chosen(catalog: Catalog, names: Sequence[str]) -> list[str]:
    """`names` (all when none), parents first."""
    chosen = [get(catalog, name).name for name in names] or list(catalog.specs)
    return graph.ordered(catalog.specs, chosen)


def check_all(catalog: Catalog, names: Sequence[str]) -> list[Problem]:
    """Missing or stale locks of `names` (all when none), read from files alone."""
    parent_of = graph.parents(catalog.specs)
    return [
        problem
        for name in _chosen(catalog, names)
        for problem in lock.stale_locks(
            catalog.specs[name], graph.ancestors(name, catalog.specs, parent_of)
        )
    ]


def lock_all(
    catalog: Catalog, names: Sequence[str], only_stale: bool, request: Request, progress: Progress
) -> Outcome:
    """Lock `names` (all when none) parents first; a failure skips the environments built on
    it. `progress(total)` gives the function that is told each environment as it starts."""
    outcome = Outcome()
    broken: set[str] = set()
    order = _chosen(catalog, names)
    parent_of = graph.parents(catalog.specs)
    with progress(len(order)) as step:
        for name in order:
            spec = catalog.specs[name]
            ancestors = graph.ancestors(name, catalog.specs, parent_of)
            step(name)
            if broken & {a.name for a in ancestors}:
                outcome.skipped.append(name)
                broken.add(name)
                continue
            if only_stale and not lock.stale_locks(spec, ancestors):
                outcome.unchanged += [i.lock for i in sources.lock_inputs(spec)]
                continue
            try:
                changed, unchanged = lock_environment(spec, ancestors, request)
            except EnvrepoError as error:
                outcome.failed.append(error)
                broken.add(name)
                continue
            outcome.changed += changed
            outcome.unchanged += unchanged
    return outcome


def refusal(name: str) -> Problem:
    return Problem(name, "", "skipped: an environment it is built on failed to lock")
