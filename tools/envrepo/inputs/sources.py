"""The inputs an environment's spec names, and the lock file each is locked into."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from envrepo.errors import EnvrepoError
from envrepo.repo.spec import Spec

PIP_LOCK = "requirements.lock"
IMAGE_LOCK = "base-image.lock"
PUBLISHED_LOCK = "published-base.lock"


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
    if spec.wheels_folder is None or not (spec.folder / spec.wheels_folder).is_dir():
        return []
    return sorted((spec.folder / spec.wheels_folder).glob("*.whl"))


def private_files(specs: Iterable[Spec]) -> dict[str, Path]:
    """The wheel file of each canonical name the environments' own wheels provide: exact
    files, never asked of an index, so never a range to pin nor a public package's name."""
    return {
        canonicalize_name(wheel.name.split("-", 1)[0]): wheel
        for spec in specs
        for wheel in wheel_files(spec)
    }


def has_conda_pip(spec: Spec) -> bool:
    """Whether the conda input has a pip: section, which is locked with the pip input."""
    if spec.conda is None:
        return False
    from envrepo.inputs import conda as conda_input

    try:
        return bool(conda_input.read_input(spec.folder / spec.conda, spec.conda)[0].pip)
    except EnvrepoError:
        return False


def lock_inputs(spec: Spec) -> list[LockInput]:
    """The locks `spec` needs: conda packages in conda.lock; pip requirements, the conda
    input's pip: list and private wheels together in one pip lock."""
    inputs = []
    if spec.base.kind == "published":
        # First: the pip lock takes the published base's packages as its constraints.
        inputs.append(
            LockInput("published", spec.folder / "environment.yaml", spec.folder / PUBLISHED_LOCK)
        )
    if spec.pip is not None:
        source = spec.folder / spec.pip
        inputs.append(LockInput("pip", source, lock_path(source)))
    elif wheel_files(spec) or has_conda_pip(spec):
        source = spec.folder / (spec.wheels_folder or spec.conda or "")
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
