"""`envrepo init`: a platform's or a consumer's repository, made ready to use envrepo."""

from __future__ import annotations

from pathlib import Path

import click

from envrepo.cli.report import note
from envrepo.errors import ExitCode


@click.command()
@click.option(
    "--platform",
    "kind",
    flag_value="platform",
    help="A repository that builds and publishes environments.",
)
@click.option(
    "--consumer",
    "kind",
    flag_value="consumer",
    default=True,
    help="A repository that pins published environments (the default).",
)
@click.option("--registry", default=None, help="Platform: where images are pushed.")
@click.option("--index", "index", default=None, help="The index URL (published, or read).")
@click.option(
    "--index-branch",
    default="gh-pages",
    show_default=True,
    help="Platform: the branch its CI publishes the index to.",
)
@click.option(
    "--root",
    default=None,
    help="Platform: the name of its root environment (default: the Debian suite's name).",
)
@click.option(
    "--suite",
    default="bookworm",
    show_default=True,
    help="Platform: the Debian suite its root is made from.",
)
@click.option(
    "--hooks-repo",
    default=None,
    help="Where envrepo's hooks and reusable workflows come from (a git URL).",
)
@click.option(
    "--hooks-rev",
    default=None,
    help="Their revision (default: this envrepo's release tag, or the commit it was built from).",
)
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False), default=".")
def init(
    kind: str,
    registry: str | None,
    index: str | None,
    index_branch: str,
    root: str | None,
    suite: str,
    hooks_repo: str | None,
    hooks_rev: str | None,
    folder: Path,
) -> int:
    """Start a repository that uses envrepo: config, hooks, CI workflows, a root environment."""
    from envrepo import __version__
    from envrepo.author import init as starting

    folder.mkdir(parents=True, exist_ok=True)
    pin = starting.pinned(__version__, hooks_rev)
    request = starting.Request(
        "platform" if kind == "platform" else "consumer",
        registry,
        index,
        hooks_repo or starting.HOOKS_REPO,
        pin,
        index_branch,
        root or suite,
        suite,
    )
    written, kept = starting.init(folder, request)
    for name in written:
        click.echo(f"wrote {folder / name}")
    if kept:
        note(f"left as they were: {', '.join(kept)}")
    if pin.version is None:
        note(f"envrepo {__version__} is not a release: hooks and workflows pinned at {pin.rev}")
    if kind == "platform":
        note("next: envrepo scaffold NAME (on the root), then git add -A && pre-commit install")
    return ExitCode.OK
