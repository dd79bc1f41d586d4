"""An environment.yml as an environment's inputs: conda.yaml, requirements.txt, variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from rattler.exceptions import InvalidMatchSpecError
from ruamel.yaml.error import YAMLError

from envrepo.author.convert import PYTHON_VERSION, Inputs, Row, Taking, shaped, text_or_none
from envrepo.errors import fail
from envrepo.inputs import conda as conda_input
from envrepo.inputs import requirements
from envrepo.repo import yamledit
from envrepo.repo.yamlio import load_yaml, read_text


def _pip_rows(text: str, items: Any) -> list[Row]:
    """The pip: list's entries with their line numbers and comments (the comment lines just
    above an entry too), as a requirements file would hold them."""
    raw = text.splitlines()
    rows: list[Row] = []
    for index, item in enumerate(items):
        number = items.lc.item(index)[0]
        above = number
        while above > 0 and raw[above - 1].strip().startswith("#"):
            above -= 1
        rows += [(line + 1, "", raw[line].strip()) for line in range(above, number)]
        found = re.search(r"\s#.*$", raw[number]) if number < len(raw) else None
        rows.append((number + 1, str(item).strip(), found.group(0).strip() if found else ""))
    return rows


def from_conda(path: Path) -> Inputs:
    """An environment.yml: channels and conda packages (python among them: a conda
    environment brings its own) to conda.yaml, its pip list to requirements.txt, its
    variables to the spec."""
    shown = str(path)
    # The safe loader first: it refuses alias bombs, duplicate keys and the like, one line each.
    load_yaml(path, shown, "conda file")
    text = read_text(path, shown, "conda file")
    try:
        document = yamledit.parse(text)
    except YAMLError as error:
        reason = " ".join(str(error).split())
        raise fail(shown, "", f"is not valid YAML ({reason}); fix it") from None
    if not isinstance(document, dict):
        raise fail(
            shown, "", "is not a mapping; write channels: and dependencies: as in environment.yml"
        )
    taking = Taking()
    for key in ("name", "prefix"):
        document.pop(key, None)
    raw_variables = shaped(shown, "variables", document.pop("variables", None) or {}, dict)
    variables = {str(k): str(v) for k, v in raw_variables.items()}
    dependencies = shaped(shown, "dependencies", document.get("dependencies") or [], list)
    lines = conda_input.dependency_lines(text)
    pip_lines: list[str] = []
    pip_at: dict[str, str] = {}
    conda_names: dict[str, str] = {}
    for index in reversed(range(len(dependencies))):
        item = dependencies[index]
        where = f"line {lines.get(index, 0)}"
        if isinstance(item, dict) and list(item) == ["pip"] and isinstance(item["pip"], list):
            rows = _pip_rows(text, item["pip"])
            pip_lines = taking.rows(rows, path.parent, shown) + pip_lines
            for number, content, _ in rows:
                try:
                    pip_at[requirements.canonical(Requirement(content).name)] = f"line {number}"
                except InvalidRequirement:
                    continue
            del dependencies[index]
            continue
        if not isinstance(item, str):
            taking.warn(shown, where, f"{item!r} is neither a match spec nor a pip: list; left out")
            del dependencies[index]
            continue
        try:
            spec = conda_input.match_spec(item)
        except InvalidMatchSpecError as error:
            taking.warn(
                shown,
                where,
                f"{item!r} is not a conda match spec ({conda_input.reason(error)}); left out",
            )
            del dependencies[index]
            continue
        name = spec.name.normalized if spec.name is not None else ""
        conda_names[requirements.canonical(name)] = where
        if name == "python":
            found = PYTHON_VERSION.search(str(spec.version or ""))
            taking.python = found.group(1) if found else None
    for name, where in sorted(pip_at.items()):
        if name in conda_names and name not in ("pip", "python"):
            taking.warn(
                shown,
                where,
                f"{name} is both a conda package ({conda_names[name]}) and in the pip list; "
                "pip's would overwrite conda's files in the image: keep one",
            )
    pip = text_or_none(pip_lines, f"# from the pip: list of {path.name}")
    taking.warnings.sort(key=lambda p: int(p.field.removeprefix("line ") or 0))
    return taking.inputs(conda=yamledit.dump(document), pip=pip, variables=variables)
