"""Writing locks: each input kind has a locker, a function from (spec, input) to lock body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from envrepo import lock, lock_pip
from envrepo.errors import EnvrepoError, Problem
from envrepo.files import write_text
from envrepo.spec import Spec

Locker = Callable[[Spec, lock.LockInput], str]
ToolVersion = Callable[[], str]

LOCKERS: Mapping[str, tuple[Locker, ToolVersion]] = {
    "pip": (lock_pip.resolve, lambda: lock_pip.tool_version()),
}


def lock_environment(spec: Spec) -> list[Path]:
    """Write every lock of `spec`; the locks that changed. Nothing is written on failure."""
    rendered: list[tuple[Path, str]] = []
    for item in lock.lock_inputs(spec):
        if item.field not in LOCKERS:
            raise EnvrepoError(
                Problem(
                    spec.spec_display,
                    item.field,
                    (
                        f"this envrepo cannot lock {item.field} inputs yet; "
                        "remove the input or lock it with a newer envrepo"
                    ),
                )
            )
        resolve, version = LOCKERS[item.field]
        rendered.append((item.lock, lock.render(spec, item, resolve(spec, item), version())))
    return [path for path, text in rendered if write_text(path, text)]
