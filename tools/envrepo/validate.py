"""Repository rules on top of the schema: one run reports every problem of every environment."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs import requirements, sources
from envrepo.lock import files as lock
from envrepo.lock.image import locked_python, mismatch
from envrepo.repo import graph
from envrepo.repo.config import CONFIG_FILE, Repository
from envrepo.repo.paths import check_relative, confined_tree, confinement
from envrepo.repo.spec import TESTS_DIR, Catalog, Spec, cutoff, load_catalog, python_agrees

# The python3 each Debian suite ships, for roots made with base.bootstrap.
DEBIAN_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
# MAX_ARG_STRLEN: the longest string, NAME=value included, that execve takes.
MAX_VARIABLE = 128 * 1024 - 1
NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def _names(spec: Spec, repo: Repository) -> list[Problem]:
    problems = []
    where = spec.spec_display
    folder = spec.folder.name
    if not NAME.match(folder):
        problems.append(
            Problem(
                spec.display,
                "",
                (
                    "the folder name is not a valid image name; rename the folder with lowercase "
                    "letters, digits and . _ - between them"
                ),
            )
        )
    if spec.name != folder:
        problems.append(
            Problem(
                where,
                "name",
                (f"{spec.name!r} differs from its folder {folder!r}; make them the same"),
            )
        )
    prefix = repo.config.reserved_prefix
    if prefix and spec.name.startswith(prefix) and not spec.curated:
        problems.append(
            Problem(
                where,
                "name",
                (
                    f"{spec.name!r} starts with the reserved prefix {prefix!r}, which only curated "
                    "environments may use; rename it"
                ),
            )
        )
    if prefix and spec.curated and not spec.name.startswith(prefix):
        problems.append(
            Problem(
                where,
                "curated",
                (
                    f"curated environments carry the reserved prefix {prefix!r}; "
                    f"rename it to {prefix + spec.name!r} or drop curated: true"
                ),
            )
        )
    return problems


def _wheels(spec: Spec, folder: Path, field: str) -> list[Problem]:
    problems = []
    for entry in sorted(folder.iterdir()):
        shown = f"{spec.display}/{entry.relative_to(spec.folder).as_posix()}"
        leaks = confinement(entry, spec.folder)
        if leaks is not None:
            problems.append(Problem(shown, "", leaks))
        elif entry.suffix != ".whl" or not entry.is_file():
            problems.append(
                Problem(
                    shown,
                    "",
                    (
                        f"is not a wheel (.whl file), and {field} holds only wheels; move it elsewhere"
                    ),
                )
            )
        else:
            try:
                parse_wheel_filename(entry.name)
            except InvalidWheelFilename:
                problems.append(
                    Problem(
                        shown,
                        "",
                        (
                            "is not a valid wheel file name (name-version-python-abi-platform.whl); "
                            "rename it as the wheel's metadata says"
                        ),
                    )
                )
    return problems


def _inputs(spec: Spec, private: set[str]) -> tuple[list[Problem], dict[str, Sequence[Path]]]:
    """Problems with the files the spec names and what is in them; the files each input reads."""
    problems: list[Problem] = []
    read: dict[str, Sequence[Path]] = {}
    unpinned: dict[str, list[str]] = {}
    for field, value in spec.inputs().items():
        found = check_relative(value, spec.folder, spec.spec_display, field)
        if found is not None:
            problems.append(found)
            continue
        target = spec.folder / value
        want_folder = field == "wheels"
        leaks = confinement(target, spec.folder)
        if leaks is not None:
            problems.append(Problem(f"{spec.display}/{value}", "", leaks))
        elif want_folder and not target.is_dir():
            problems.append(
                Problem(
                    spec.spec_display,
                    field,
                    (f"{value!r} is not a folder in {spec.display}; create it or fix the path"),
                )
            )
        elif not want_folder and not target.is_file():
            problems.append(
                Problem(
                    spec.spec_display,
                    field,
                    (f"{value!r} does not exist in {spec.display}; create it or fix the path"),
                )
            )
        elif want_folder:
            problems.extend(_wheels(spec, target, field))
        elif field == "pip":
            parsed = requirements.parse(target, spec.folder, Path(spec.display))
            problems.extend(parsed.problems)
            read[field] = parsed.files
            unpinned[field] = parsed.unpinned
        elif field == "conda":
            shown = f"{spec.display}/{value}"
            # rattler, which reads match specs, is loaded only for an environment that has
            # conda input: validating a tree of pip environments does not pay its start-up.
            from envrepo.inputs import conda as conda_input

            try:
                conda, shape = conda_input.read_input(target, shown)
            except EnvrepoError as error:
                problems.extend(error.problems)
                continue
            problems.extend(shape)
            unpinned[field] = list(conda.unpinned)
            # Its pip: list is locked with the pip input, in the pip lock.
            listed = (requirements.check_entry(entry)[0] for entry in conda.pip)
            unpinned.setdefault("pip", []).extend(
                r.name for r in listed if r is not None and not requirements.is_exact(r)
            )
    ranged = {
        field: [name for name in names if canonicalize_name(name) not in private]
        for field, names in unpinned.items()
    }
    return problems + _unpinned(spec, ranged), read


def _unpinned(spec: Spec, unpinned: Mapping[str, list[str]]) -> list[Problem]:
    """One line for the environment: a range is fine as an input, but the version it is
    locked at is chosen by the lock, and a re-lock may choose another."""
    names = list(dict.fromkeys(name for found in unpinned.values() for name in found))
    if not names:
        return []
    locks = {item.field: item.lock.name for item in sources.lock_inputs(spec)}
    where = " and ".join(locks[field] for field in unpinned if unpinned[field] and field in locks)
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    message = (
        f"{len(names)} input{'s are' if len(names) > 1 else ' is'} not pinned to one version "
        f"({shown}); {where} {'pin' if ' and ' in where else 'pins'} them, and a re-lock may "
        "move them: review the lock's diff, "
        "or pin them with == in the input"
    )
    return [Problem(spec.display, "", message, "warning")]


def _variables(spec: Spec) -> list[Problem]:
    """Variables a process in the image can be started with."""
    problems = []
    for name, value in spec.variables.items():
        size = len(f"{name}={value}".encode())
        if "\0" in value:
            message = "holds a NUL character, which no environment variable can; remove it"
        elif size > MAX_VARIABLE:
            message = (
                f"is {size / 1024:.0f} KiB; Linux starts no program with a variable over "
                f"{MAX_VARIABLE // 1024} KiB: shorten it, or ship the value as a file in the image"
            )
        else:
            continue
        problems.append(Problem(spec.spec_display, f"variables.{name}", message))
    return problems


def _base_python(spec: Spec) -> list[Problem]:
    """The python a base root or image has, where it is known before anything is built: the
    one Debian ships in a bootstrap root's suite, the one a base image's lock recorded."""
    boot = spec.base.bootstrap
    if boot is not None and "python3" in boot.packages and boot.suite in DEBIAN_PYTHON:
        shipped = DEBIAN_PYTHON[boot.suite]
        if not python_agrees(shipped, spec.python) and not python_agrees(spec.python, shipped):
            message = (
                f"{spec.python!r} differs from python {shipped}, which Debian {boot.suite} ships; "
                "make them the same"
            )
            return [Problem(spec.spec_display, "python", message)]
    item = next((i for i in sources.lock_inputs(spec) if i.field == "image"), None)
    if item is None or not item.lock.is_file() or confinement(item.lock, spec.folder):
        return []
    found = locked_python(spec, item)
    if found is not None and not python_agrees(found, spec.python):
        return [mismatch(spec, found)]
    return []


def _consistency(spec: Spec, catalog: Catalog) -> list[Problem]:
    problems: list[Problem] = _variables(spec) + _base_python(spec)
    where = spec.spec_display
    try:
        cutoff(spec)
    except EnvrepoError as error:
        problems.extend(error.problems)
    if spec.user_managed:
        for field in ("pip", "conda", "wheels", "apt"):
            if spec.document.get(field):
                problems.append(
                    Problem(
                        where,
                        field,
                        (
                            "is set, but user_managed: true installs nothing; "
                            f"remove {field} or set user_managed: false"
                        ),
                    )
                )
    parent = catalog.specs.get(spec.parent or "")
    if parent is not None:
        # A conda environment on a root without a venv brings its own python.
        own_python = spec.conda is not None and parent.user_managed
        if parent.python != spec.python and not own_python:
            problems.append(
                Problem(
                    where,
                    "python",
                    (
                        f"{spec.python!r} differs from {parent.python!r} of its base environment "
                        f"{parent.name!r}, whose interpreter it uses; make them the same"
                    ),
                )
            )
        if spec.conda is not None and not parent.user_managed:
            problems.append(
                Problem(
                    where,
                    "conda",
                    (
                        f"a conda environment is its own prefix at /opt/env, and {parent.name!r} has a "
                        "virtual environment there; base it on a root environment or an image"
                    ),
                )
            )
        if spec.curated and not parent.curated:
            problems.append(
                Problem(
                    where,
                    "base.environment",
                    (
                        f"curated environments build only on curated ones, and {parent.name!r} is not; "
                        "base it on a curated environment"
                    ),
                )
            )
    return problems


def _confined(spec: Spec) -> list[Problem]:
    """What the build reads besides the inputs: the locks, the smoke tests, and for a
    Dockerfile base the whole folder, each a regular file or folder inside it."""
    problems = []
    for item in sources.lock_inputs(spec):
        leaks = confinement(item.lock, spec.folder)
        if leaks is not None:
            problems.append(Problem(item.lock_display(spec), "", leaks))
    if spec.base.kind == "dockerfile":
        return problems + list(confined_tree(spec.folder, spec.folder, spec.display))
    tests = spec.folder / TESTS_DIR
    return problems + list(confined_tree(tests, spec.folder, f"{spec.display}/{TESTS_DIR}"))


def environment_problems(
    spec: Spec, catalog: Catalog, parent_of: Mapping[str, str | None] | None = None
) -> list[Problem]:
    """Every rule for one environment that loaded; locks are checked once its inputs are usable."""
    ancestors = graph.ancestors(spec.name, catalog.specs, parent_of)
    input_problems, read = _inputs(spec, set(sources.private_files([spec, *ancestors])))
    problems = (
        _names(spec, catalog.repo) + _consistency(spec, catalog) + input_problems + _confined(spec)
    )
    if not any(p.is_error for p in problems):
        try:
            problems += lock.stale_locks(spec, ancestors, read)
        except EnvrepoError as error:
            # A base environment's lock that cannot be read; that environment says why.
            problems += error.problems
    return problems


def _field_key(problem: Problem) -> tuple[object, ...]:
    return (problem.path, [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", problem.field)])


def validate(
    catalog: Catalog, config_problems: Iterable[Problem], selected: set[str] | None = None
) -> list[Problem]:
    """All problems, in path order; only those of `selected` environments when it is given."""
    problems = list(config_problems) + list(catalog.problems) + graph.problems(catalog)
    parent_of = graph.parents(catalog.specs)
    for name, spec in catalog.specs.items():
        if selected is None or name in selected:
            problems += environment_problems(spec, catalog, parent_of)
    if selected is not None:
        roots = [catalog.repo.display(catalog.repo.folder(name)) for name in selected]
        problems = [
            p
            for p in problems
            if p.path == CONFIG_FILE
            or any(p.path == r or p.path.startswith(r + "/") for r in roots)
        ]
    return sorted(set(problems), key=_field_key)


def named_by(paths: Iterable[Path], repo: Repository) -> set[str] | None:
    """The environments that `paths` (names, or folders or files inside them) point at; None
    for all."""
    chosen: set[str] = set()
    root = repo.environments_dir.resolve()
    for path in paths:
        if not path.exists() and len(path.parts) == 1 and repo.folder(path.name).is_dir():
            chosen.add(path.name)
            continue
        full = path.resolve()
        if full in (repo.root.resolve(), root) or full == (repo.root / CONFIG_FILE).resolve():
            return None
        if not full.is_relative_to(root) or full == root:
            raise EnvrepoError(
                Problem(
                    str(path),
                    "",
                    (
                        f"is not inside {repo.config.environments}/ nor an environment's name; "
                        "pass an environment's name, its folder or a file in one"
                    ),
                )
            )
        chosen.add(full.relative_to(root).parts[0])
    return chosen


@dataclass(frozen=True)
class Report:
    """What `validate` found, and how many environments it looked at."""

    problems: list[Problem]
    checked: int


def validate_repository(
    repo: Repository, config_problems: Iterable[Problem], paths: Sequence[Path]
) -> Report:
    """Every problem of the environments `paths` point at (all when none)."""
    catalog = load_catalog(repo)
    selected = named_by(paths, repo) if paths else None
    problems = validate(catalog, config_problems, selected)
    return Report(problems, len(catalog.folders) if selected is None else len(selected))
