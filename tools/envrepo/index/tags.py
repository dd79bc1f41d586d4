"""The tags envrepo gives in a registry, spelled once: `h-<spec hash prefix>` finds an image
by hash, `sha-<commit>` by commit, `<version>` and `latest` once published; `t-<tests
digest>` says the image passed those tests, `p-<hash>` holds its package listing, and
`l-<layer key>` a layer other environments share."""

from __future__ import annotations

HASH = "h-"
COMMIT = "sha-"
TESTED = "t-"
LISTING = "p-"
LAYER = "l-"
LATEST = "latest"
# How much of each value a tag carries: enough to tell them apart, short enough to read.
COMMIT_LENGTH = 12
TESTS_LENGTH = 24


def hash_tag(short_hash: str) -> str:
    return f"{HASH}{short_hash}"


def commit_tag(commit: str) -> str:
    return f"{COMMIT}{commit[:COMMIT_LENGTH]}"


def tested_tag(tests_digest: str) -> str:
    """The tag that says the image it names passed the tests with `tests_digest`: a fresh
    runner finds it with one HEAD request, without pulling the image."""
    return f"{TESTED}{tests_digest[:TESTS_LENGTH]}"


def listing_tag(short_hash: str) -> str:
    return f"{LISTING}{short_hash}"


def layer_tag(key: str) -> str:
    return f"{LAYER}{key}"


def published_tags(number: int) -> list[str]:
    """The tags publish gives a version's image."""
    return [str(number), LATEST]
