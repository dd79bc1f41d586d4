"""Reading pip requirements files: what they ask for, and what breaks a hermetic build."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envrepo.errors import EnvrepoError, Problem, Severity
from envrepo.repo.yamlio import read_text

_COMMENT = re.compile(r"(^|\s+)#.*$")
INCLUDE = {
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
}
OWN_INDEX = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--no-index",
    "--trusted-host",
)
_EDITABLE = ("-e", "--editable")
HARMLESS = ("--pre", "--prefer-binary", "--only-binary", "--no-binary", "--use-feature")
URL = re.compile(r"^(git|hg|svn|bzr)\+|^[a-z]+://|^\.{0,2}/|@\s*\S+://")


@dataclass(frozen=True)
class Line:
    """One logical line of a requirements file, with where it came from."""

    display: str
    number: int
    text: str
    requirement: Requirement | None
    comment: str = ""
    # Read from a -c file: it limits versions and asks for nothing.
    constraint: bool = False


@dataclass(frozen=True)
class Requirements:
    lines: tuple[Line, ...]
    files: tuple[Path, ...]
    problems: tuple[Problem, ...]

    @property
    def requirements(self) -> list[Requirement]:
        return [
            line.requirement
            for line in self.lines
            if line.requirement is not None and not line.constraint
        ]

    @property
    def unpinned(self) -> list[str]:
        """The packages asked for without one exact version."""
        return [r.name for r in self.requirements if not is_exact(r)]


def logical_lines(text: str) -> list[tuple[int, str, str]]:
    """(first line number, content without comment, comment) per logical line."""
    result: list[tuple[int, str, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        match = _COMMENT.search(raw)
        comment = match.group(0).strip() if match else ""
        content = raw[: match.start()] if match else raw
        if content.endswith("\\"):
            pending += content[:-1]
            continue
        result.append((start, (pending + content).strip(), comment))
        pending = ""
    if pending:
        result.append((start, pending.strip(), ""))
    return result


def split_option(content: str) -> tuple[str, str]:
    option, _, rest = content.partition(" ")
    if "=" in option and option.startswith("--"):
        option, _, value = option.partition("=")
        return option, value.strip()
    return option, rest.strip()


def is_exact(requirement: Requirement) -> bool:
    specs = list(requirement.specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def parse_requirement(text: str) -> Requirement:
    """A requirement string as `envrepo add` takes it, refused when it would break the lock."""
    if URL.search(text):
        raise EnvrepoError(Problem(text, "", _url_message()))
    try:
        return Requirement(text)
    except InvalidRequirement as error:
        raise EnvrepoError(
            Problem(text, "", f"is not a valid requirement ({_first_line(error)}); fix it")
        ) from None


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0]


def _url_message() -> str:
    return (
        "a URL, path or VCS requirement is not locked from an index with hashes; "
        "build a wheel and put it in the environment's wheels/ folder"
    )


def check_entry(content: str) -> tuple[Requirement | None, list[tuple[Severity, str]]]:
    """One requirement or option (not an include), and what is wrong with it."""
    if content.startswith("-"):
        option, _ = split_option(content)
        if option in OWN_INDEX:
            return None, [
                (
                    "error",
                    (
                        f"{option} sets its own package index, which breaks the hermetic, hash-checked "
                        "build; remove it (envrepo locks from the configured index and installs only "
                        "the locked files)"
                    ),
                )
            ]
        if option in _EDITABLE:
            return None, [
                (
                    "error",
                    (
                        "an editable requirement cannot go into an image; build a wheel and put it "
                        "in the environment's wheels/ folder"
                    ),
                )
            ]
        if option in HARMLESS:
            return None, []
        return None, [("error", f"unknown option {option}; remove it")]
    text = content.split(" --hash", 1)[0].strip()
    if URL.search(text):
        return None, [("error", _url_message())]
    try:
        requirement = Requirement(text)
    except InvalidRequirement as error:
        return None, [
            ("error", f"{text!r} is not a valid requirement ({_first_line(error)}); fix it")
        ]
    return requirement, []


def parse(path: Path, folder: Path, display_of: Path) -> Requirements:
    """Parse `path` and every file it includes with -r or -c, which must stay inside `folder`.

    `folder` is taken as resolved (Spec.folder is).
    """
    lines: list[Line] = []
    files: list[Path] = []
    problems: list[Problem] = []

    root = folder

    def display(file: Path) -> str:
        return (display_of / file.relative_to(root)).as_posix()

    def include(
        shown: str, where: str, file: Path, option: str, value: str, constraint: bool
    ) -> None:
        target = (file.parent / value).resolve()
        if not value or not target.is_relative_to(root):
            message = f"{option} {value} leads outside the environment's folder; copy the file in"
        elif target in files:
            message = f"{option} {value} includes a file already included; remove the loop"
        elif not target.exists():
            message = f"{option} {value}: no such file; create it or fix the path"
        else:
            walk(target, constraint or option in ("-c", "--constraint"))
            return
        problems.append(Problem(shown, where, message))

    def walk(file: Path, constraint: bool = False) -> None:
        files.append(file)
        shown = display(file)
        try:
            text = read_text(file, shown, "requirements file")
        except EnvrepoError as error:
            problems.extend(error.problems)
            return
        for number, content, comment in logical_lines(text):
            where = f"line {number}"
            option, value = split_option(content)
            if option in INCLUDE:
                lines.append(Line(shown, number, content, None, comment))
                include(shown, where, file, option, value, constraint)
                continue
            requirement = None
            if content:
                requirement, found = check_entry(content)
                problems.extend(Problem(shown, where, message, sev) for sev, message in found)
            lines.append(Line(shown, number, content, requirement, comment, constraint))

    walk(path.resolve())
    return Requirements(tuple(lines), tuple(files), tuple(problems))


def canonical(name: str) -> str:
    return str(canonicalize_name(name))
