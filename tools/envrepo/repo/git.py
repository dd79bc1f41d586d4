"""What envrepo asks of the repository's git: the commit checked out, whether files differ
from it, and the files as they were at a ref. Through gitpython, with every repository
object closed, so that no git process outlives a command."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import git
import git.exc

from envrepo.errors import EnvrepoError


def head_commit(root: Path) -> str | None:
    """The commit the work tree at `root` has checked out; None before the first commit, or
    outside git."""
    try:
        with git.Repo(root) as repo:
            return repo.head.commit.hexsha if repo.head.is_valid() else None
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        return None


def differs(root: Path, paths: Sequence[Path]) -> bool:
    """Whether anything under `paths` differs from the commit checked out: changed, staged,
    deleted, or new and not ignored. Outside git, nothing is known to differ."""
    try:
        with git.Repo(root) as repo:
            spec = [path.relative_to(root).as_posix() for path in paths]
            return bool(repo.git.status("--porcelain", "--untracked-files=all", "--", *spec))
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        return False


def archive(root: Path, ref: str, paths: Sequence[str]) -> bytes:
    """A tar of `paths` as git `ref` has them."""
    try:
        with git.Repo(root) as repo:
            buffer = io.BytesIO()
            repo.archive(buffer, treeish=ref, format="tar", path=list(paths))
            return buffer.getvalue()
    except git.exc.GitCommandError as error:
        lines = str(error.stderr).strip().strip("'").strip().splitlines()
        reason = lines[-1].strip() if lines else "git archive failed"
        raise EnvrepoError(
            f"--since {ref}: {reason.removeprefix('stderr: ')}; "
            "pass a commit, branch or tag of this repository"
        ) from None
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        raise EnvrepoError(
            f"--since {ref}: {root} is not a git repository; run plan without --since"
        ) from None
