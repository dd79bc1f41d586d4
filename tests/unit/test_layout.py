"""The package's layout as its contracts say: import-linter keeps the layers on the tree and
breaks them on a copy with an import added against them; no module grows past its size."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support import PROJECT

PACKAGE = PROJECT / "tools" / "envrepo"
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with the project's contracts on the package under `root`."""
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(PROJECT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_import_up_the_pipeline_or_around_a_cycle_breaks_them(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "envrepo", ignore=shutil.ignore_patterns("__pycache__"))
    added = {
        "repo/files.py": "from envrepo.cli import options as _options\n",
        "lock/published.py": "from envrepo.lock import pip as _pip\n",
        "cli/serve.py": "from envrepo.cli import run as _run\n",
    }
    for path, line in added.items():
        with (tmp_path / "envrepo" / path).open("a", encoding="utf-8") as module:
            module.write(line)
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "envrepo.repo.files -> envrepo.cli.options" in result.stdout
    assert "- .published -> .pip (1 import)" in result.stdout
    assert "envrepo.cli.serve -> envrepo.cli.run" in result.stdout
    assert "Contracts: 0 kept, 3 broken." in result.stdout


def test_no_module_is_over_450_lines_and_no_command_over_150() -> None:
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    too_big = {
        path: lines
        for path, lines in sizes.items()
        if lines > (150 if path.startswith("cli/") else 450)
    }
    assert too_big == {}
    assert len(sizes) > 100
