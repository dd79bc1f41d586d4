"""Publishing into a git branch (a pages branch): the branch's index is checked out into a
scratch folder, changed there, and committed on top of the tip it was read from; the commit
then replaces the tip only if the tip has not moved (a push that never forces, or a
compare-and-swap of the local ref). When it has moved, the publish reads the new tip and
merges again: two publishes at once both land, one after the other."""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import git
import git.exc

from envrepo.errors import EnvrepoError
from envrepo.index.store import IndexFolder

ATTEMPTS = 20
T = TypeVar("T")
IDENTITY = {
    "GIT_AUTHOR_NAME": "envrepo publish",
    "GIT_AUTHOR_EMAIL": "envrepo@localhost",
    "GIT_COMMITTER_NAME": "envrepo publish",
    "GIT_COMMITTER_EMAIL": "envrepo@localhost",
}


def _reason(error: git.exc.GitCommandError) -> str:
    lines = [
        line.strip() for line in str(error.stderr).strip("'\" \n").splitlines() if line.strip()
    ]
    return lines[-1].removeprefix("stderr: ").strip("'") if lines else str(error)


@contextmanager
def _git(root: Path, scratch: Path) -> Iterator[git.Git]:
    """git for the repository at `root` with the scratch folder as its work tree and an index
    of its own: the repository's work tree, index and HEAD are never touched."""
    with git.Repo(root) as repo:
        command = git.Git(str(scratch / "tree"))
        identity = repo.config_reader()
        environment = {
            "GIT_DIR": str(repo.git_dir),
            "GIT_WORK_TREE": str(scratch / "tree"),
            "GIT_INDEX_FILE": str(scratch / "index"),
        }
        if not identity.get_value("user", "email", default=""):
            environment.update({k: os.environ.get(k, v) for k, v in IDENTITY.items()})
        command.update_environment(**environment)
        yield command


def _tip(command: git.Git, branch: str, remote: str | None, private: str) -> str | None:
    """The commit the branch is at now: on the remote (fetched into a ref of this publish's
    own), or here."""
    if remote is None:
        try:
            return str(command.rev_parse("--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"))
        except git.exc.GitCommandError:
            return None
    try:
        command.fetch("--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{private}")
    except git.exc.GitCommandError as error:
        if "couldn't find remote ref" in str(error.stderr):
            return None
        raise EnvrepoError(
            f"git fetch {remote} {branch}: {_reason(error)}; check the remote and its access"
        ) from None
    return str(command.rev_parse(private))


def _swap(command: git.Git, branch: str, remote: str | None, old: str | None, new: str) -> bool:
    """Make `new` the branch's tip if it is still `old`; whether it was."""
    if remote is None:
        try:
            command.update_ref(f"refs/heads/{branch}", new, old or "0" * 40)
        except git.exc.GitCommandError:
            return False
        return True
    try:
        command.push("--quiet", remote, f"{new}:refs/heads/{branch}")
    except git.exc.GitCommandError as error:
        text = str(error.stderr)
        if any(word in text for word in ("rejected", "non-fast-forward", "fetch first", "stale")):
            return False
        raise EnvrepoError(
            f"git push {remote} {branch}: {_reason(error)}; check the remote and its access"
        ) from None
    return True


def publish(
    root: Path,
    branch: str,
    remote: str | None,
    change: Callable[[IndexFolder], T],
    message: str,
) -> T:
    """Run `change` on the branch's index and make the result the branch's new tip, again
    on the new tip for as long as another publish moves it first."""
    scratch_root = root / ".envrepo" / "publish"
    scratch_root.mkdir(parents=True, exist_ok=True)
    private = f"refs/envrepo/publish/{os.getpid()}"
    for attempt in range(ATTEMPTS):
        with tempfile.TemporaryDirectory(dir=scratch_root) as folder:
            scratch = Path(folder)
            (scratch / "tree").mkdir()
            with _git(root, scratch) as command:
                try:
                    tip = _tip(command, branch, remote, private)
                    if tip is not None:
                        command.read_tree(tip)
                        command.checkout_index("--all", "--force")
                    result = change(IndexFolder(scratch / "tree"))
                    command.add("--all", ".")
                    tree = str(command.write_tree())
                    if tip is not None and tree == str(command.rev_parse(f"{tip}^{{tree}}")):
                        return result
                    parents = ["-p", tip] if tip else []
                    commit = str(command.commit_tree(tree, *parents, "-m", message))
                    if _swap(command, branch, remote, tip, commit):
                        if remote is not None:
                            command.update_ref(f"refs/remotes/{remote}/{branch}", commit)
                        return result
                finally:
                    if remote is not None:
                        command.update_ref("-d", private, with_exceptions=False)
        # Another publish moved the branch first: wait a little, then merge onto its tip.
        time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise EnvrepoError(
        f"branch {branch}: another publish moved it {ATTEMPTS} times in a row; publish again"
    )
