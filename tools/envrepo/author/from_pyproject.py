"""A pyproject.toml as an environment's inputs: its dependencies and the groups named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from envrepo.author.convert import PYTHON_VERSION, Inputs, Taking, read_toml, shaped, text_or_none
from envrepo.errors import fail
from envrepo.inputs import requirements


def from_pyproject(path: Path, groups: tuple[str, ...]) -> Inputs:
    """PEP 621 `dependencies`, and the optional-dependencies or dependency groups named."""
    shown = str(path)
    document = read_toml(path, "pyproject.toml")
    project = shaped(shown, "project", document.get("project") or {}, dict)
    optional = shaped(
        shown, "project.optional-dependencies", project.get("optional-dependencies") or {}, dict
    )
    dependencies = shaped(shown, "project.dependencies", project.get("dependencies") or [], list)
    dependency_groups = shaped(
        shown, "dependency-groups", document.get("dependency-groups") or {}, dict
    )
    sections: list[tuple[str, list[Any]]] = [("project.dependencies", dependencies)]
    for group in groups:
        if group in optional:
            key = f"project.optional-dependencies.{group}"
            sections.append((key, shaped(shown, key, optional[group], list)))
        elif group in dependency_groups:
            key = f"dependency-groups.{group}"
            sections.append((key, shaped(shown, key, dependency_groups[group], list)))
        else:
            known = ", ".join(sorted({*optional, *dependency_groups})) or "none"
            raise fail(
                shown,
                "",
                f"has no optional dependency group {group!r} (known: {known}); pass one of them",
            )
    taking = Taking()
    own = requirements.canonical(str(project.get("name", "")))

    def expanded(section: str, entries: list[Any], seen: frozenset[str]) -> list[str]:
        """The entries' lines, with `{include-group = G}` (PEP 735) and the project's own
        extras (`name[extra]`) taken in where they stand."""
        lines = []
        for index, entry in enumerate(shaped(shown, section, entries, list)):
            where = f"{section}[{index}]"
            group = entry.get("include-group") if isinstance(entry, dict) else None
            if isinstance(group, str) and group in dependency_groups and group not in seen:
                included = f"dependency-groups.{group}"
                lines += expanded(included, dependency_groups[group], seen | {group})
                continue
            if not isinstance(entry, str):
                taking.warn(shown, where, f"{entry!r} is not a requirement; left out")
                continue
            name = re.split(r"[\[\s;=<>!~@(]", entry, maxsplit=1)[0]
            if own and requirements.canonical(name) == own:
                extras = re.findall(r"[\w.-]+", entry[len(name) :].split("]")[0])
                for extra in extras:
                    if extra in optional and extra not in seen:
                        section_name = f"project.optional-dependencies.{extra}"
                        lines += expanded(section_name, optional[extra], seen | {extra})
                continue
            lines += [line for line in taking.line(where, entry, "", path.parent, shown) if line]
        return lines

    lines: list[str] = []
    for section, entries in sections:
        lines += [f"# {section}", *expanded(section, entries, frozenset())]
    requires = str(project.get("requires-python", ""))
    found = PYTHON_VERSION.search(requires) if requires.startswith(("==", "~=")) else None
    if found:
        taking.python = found.group(1)
    pip = text_or_none(lines, f"# from {path.name}")
    return taking.inputs(pip=pip, requires_python=requires or None)
