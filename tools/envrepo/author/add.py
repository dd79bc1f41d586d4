"""`envrepo add`: new requirements in an environment's inputs, comments and order kept."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement

from envrepo.errors import EnvrepoError, Problem
from envrepo.inputs import conda as conda_input
from envrepo.inputs import requirements
from envrepo.repo import yamledit
from envrepo.repo.config import SPEC_FILE
from envrepo.repo.files import write_all
from envrepo.repo.spec import Catalog, Spec, get
from envrepo.repo.yamlio import read_text

PIP_FILE = "requirements.txt"
CONDA_FILE = "conda.yaml"


def _physical_span(lines: list[str], start: int) -> int:
    """How many physical lines the logical line starting at index `start` takes."""
    end = start
    while end < len(lines) - 1 and lines[end].rstrip("\n").split(" #")[0].endswith("\\"):
        end += 1
    return end - start + 1


def _replace_or_append(text: str, found: dict[int, str], additions: list[str]) -> str:
    lines = text.splitlines(keepends=True)
    for number in sorted(found, reverse=True):
        index = number - 1
        span = _physical_span(lines, index)
        lines[index : index + span] = [found[number] + "\n"]
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(lines) + "".join(f"{line}\n" for line in additions)


def _with_comment(requirement: str, comment: str) -> str:
    return f"{requirement}  {comment}" if comment else requirement


def _spec_with(spec: Spec, field: str, value: str) -> str:
    text = read_text(spec.folder / SPEC_FILE, spec.spec_display, "spec")
    document = yamledit.parse(text)
    yamledit.set_after(document, field, value, ("python", "base", "curated", "description", "name"))
    return yamledit.dump(document)


def _new_input(spec: Spec, field: str, name: str) -> Path:
    """Where a new input file goes; refused when a file the spec does not name is there."""
    target = spec.folder / name
    if target.exists():
        raise EnvrepoError(
            Problem(
                f"{spec.display}/{name}",
                "",
                (f"exists but the spec names no {field} input; add {field}: {name} to the spec"),
            )
        )
    return target


def add_pip(spec: Spec, packages: list[str]) -> list[Path]:
    new = [requirements.parse_requirement(text) for text in packages]
    if spec.pip is None:
        target = _new_input(spec, "pip", PIP_FILE)
        body = "".join(f"{r}\n" for r in packages)
        return write_all({target: body, spec.folder / SPEC_FILE: _spec_with(spec, "pip", PIP_FILE)})
    parsed = requirements.parse(spec.folder / spec.pip, spec.folder, Path(spec.display))
    by_file: dict[str, dict[int, str]] = {}
    additions: list[str] = []
    for requirement, text in zip(new, packages, strict=True):
        match = _existing(parsed, requirement)
        if match is None:
            additions.append(text)
        else:
            merged = _merged(requirement, match.requirement)
            by_file.setdefault(match.display, {})[match.number] = _with_comment(
                merged, match.comment
            )
    changes: dict[Path, str] = {}
    for file in parsed.files:
        shown = (Path(spec.display) / file.relative_to(spec.folder.resolve())).as_posix()
        is_main = file == (spec.folder / spec.pip).resolve()
        if shown in by_file or (is_main and additions):
            text = read_text(file, shown, "requirements file")
            changes[file] = _replace_or_append(
                text, by_file.get(shown, {}), additions if is_main else []
            )
    return write_all(changes)


def _merged(new: Requirement, old: Requirement | None) -> str:
    """`new`, keeping the extras and marker of the line it replaces when it names none."""
    if old is None:
        return str(new)
    extras = new.extras or old.extras
    marker = new.marker or old.marker
    text = new.name + (f"[{','.join(sorted(extras))}]" if extras else "") + str(new.specifier)
    return f"{text} ; {marker}" if marker else text


def _existing(parsed: requirements.Requirements, new: Requirement) -> requirements.Line | None:
    wanted = requirements.canonical(new.name)
    for line in parsed.lines:
        if line.requirement is not None and requirements.canonical(line.requirement.name) == wanted:
            return line
    return None


def add_conda(spec: Spec, packages: list[str], channels: tuple[str, ...]) -> list[Path]:
    for package in packages:
        conda_input.check_spec(package)
    if spec.conda is None:
        target = _new_input(spec, "conda", CONDA_FILE)
        document = yamledit.parse("channels: []\ndependencies: []\n")
        document["channels"].extend(channels)
        document["dependencies"].extend(packages)
        return write_all(
            {
                target: yamledit.dump(document),
                spec.folder / SPEC_FILE: _spec_with(spec, "conda", CONDA_FILE),
            }
        )
    path = spec.folder / spec.conda
    shown = f"{spec.display}/{spec.conda}"
    conda_input.read_input(path, shown)
    document = yamledit.parse(read_text(path, shown, "conda input"))
    dependencies = document.setdefault("dependencies", [])
    for package in packages:
        name = conda_input.package_name(package)
        places = [
            i
            for i, item in enumerate(dependencies)
            if isinstance(item, str) and conda_input.package_name(item) == name
        ]
        if places:
            dependencies[places[0]] = package
        else:
            pip_at = [i for i, item in enumerate(dependencies) if isinstance(item, dict)]
            dependencies.insert(pip_at[0] if pip_at else len(dependencies), package)
    return write_all({path: yamledit.dump(document)})


def add(catalog: Catalog, name: str, packages: list[str], to_conda: bool) -> list[Path]:
    """Add `packages` to environment `name`'s pip input (or conda input); the files changed."""
    spec = get(catalog, name)
    if spec.user_managed:
        raise EnvrepoError(
            Problem(
                spec.spec_display,
                "user_managed",
                "is true, so the environment installs nothing; set it to false first",
            )
        )
    if to_conda:
        return add_conda(spec, packages, catalog.repo.config.defaults.channels)
    return add_pip(spec, packages)
