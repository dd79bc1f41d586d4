"""What envrepo asks of the repository's git: the commit checked out and whether the tree
differs from it, and the files as they were at a ref. Through gitpython, with every
repository object closed, so that no git process outlives a command."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import git
import git.exc

from envrepo.errors import EnvrepoError


@dataclass(frozen=True)
class Checkout:
    """The commit a work tree has checked out (None before the first commit, or outside git)
    and whether its files differ from that commit."""

    commit: str | None
    dirty: bool


def checkout(root: Path) -> Checkout:
    try:
        with git.Repo(root) as repo:
            if not repo.head.is_valid():
                return Checkout(None, repo.is_dirty(untracked_files=True))
            return Checkout(repo.head.commit.hexsha, repo.is_dirty(untracked_files=True))
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        return Checkout(None, False)


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
