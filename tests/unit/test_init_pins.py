"""What `envrepo init` pins an adopter's hooks and CI at: the installed envrepo's release tag,
or the revision given; a build between releases has no tag and says so."""

from __future__ import annotations

import pytest
import yaml

from envrepo.author.init import HOOKS_REPO, Pinned, Request, _workflow, pinned, workflows_repo
from envrepo.errors import EnvrepoError


@pytest.mark.parametrize(
    ("installed", "given", "expected"),
    [
        ("0.2.0", None, Pinned("v0.2.0", "0.2.0")),
        ("1.4.0rc1", None, Pinned("v1.4.0rc1", "1.4.0rc1")),
        ("0.2.0", "v0.1.9", Pinned("v0.1.9", "0.2.0")),
        ("0.2.1.dev3+g1234abc", "a" * 40, Pinned("a" * 40, None)),
    ],
)
def test_the_hooks_revision(installed: str, given: str | None, expected: Pinned) -> None:
    assert pinned(installed, given) == expected


@pytest.mark.parametrize("installed", ["0.2.1.dev3+g1234abc", "0+unknown", "not a version"])
def test_a_build_between_releases_asks_for_a_revision(installed: str) -> None:
    with pytest.raises(EnvrepoError) as raised:
        pinned(installed, None)
    assert list(raised.value.lines) == [
        f"envrepo {installed} is not a release, so no tag names it; pass --hooks-rev with a "
        "tag or full commit of the hooks repository, or install a release of envrepo"
    ]


@pytest.mark.parametrize(
    ("hooks", "expected"),
    [
        ("https://github.com/acme/envrepo-fork", "acme/envrepo-fork"),
        ("git@github.com:acme/envrepo.git", "acme/envrepo"),
        ("/srv/mirror/envrepo", "envrepo/envrepo"),
    ],
)
def test_the_workflows_come_from_the_hooks_repository_on_github(hooks: str, expected: str) -> None:
    assert workflows_repo(hooks) == expected


@pytest.mark.parametrize(
    ("pin", "install"),
    [
        (Pinned("v0.2.0", "0.2.0"), {"envrepo-version": "0.2.0"}),
        (Pinned("c" * 40, None), {"envrepo-source": f"git+{HOOKS_REPO}@{'c' * 40}"}),
    ],
)
def test_the_caller_workflows_pin_one_envrepo(pin: Pinned, install: dict[str, str]) -> None:
    request = Request("platform", "ghcr.io/acme", None, HOOKS_REPO, pin, "envs", "bookworm")
    for name, reusable in [
        ("envrepo-main.yml", "environments-main.yml"),
        ("envrepo-pull-request.yml", "environments-pull-request.yml"),
    ]:
        job = yaml.safe_load(_workflow(name, request))["jobs"]["environments"]
        assert job["uses"] == f"envrepo/envrepo/.github/workflows/{reusable}@{pin.rev}"
        given = {k: v for k, v in job["with"].items() if k.startswith("envrepo-")}
        assert given == install
        assert "@" not in str(job["with"].get("index-branch", "envs"))
