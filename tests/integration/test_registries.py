"""envrepo against registries as teams run them: in token mode (a Bearer challenge, a token
issuer signing real JWTs), over TLS, with a path in the address, and next to another
registry that must never see the first one's credentials."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from registries import (
    Certificate,
    RunningRegistry,
    TokenIssuer,
    serving,
    start_registry,
    token_block,
)
from support import CHILD, Built, forget_images, run_envrepo, write_files

USER = "builder"


@dataclass(frozen=True)
class TokenRegistry:
    registry: RunningRegistry
    issuer: TokenIssuer
    password: str

    @property
    def host(self) -> str:
        return self.registry.host

    def env(self, password: str | None = None) -> dict[str, str]:
        return {
            "ENVREPO_REGISTRY_USERNAME": USER,
            "ENVREPO_REGISTRY_PASSWORD": self.password if password is None else password,
        }

    def push(self, image: str, repository: str, tag: str) -> None:
        """`image` into this registry as `repository:tag`, pushed by the daemon with the
        builder's credentials."""
        client = docker.from_env()
        reference = f"{self.host}/{repository}"
        client.images.get(image).tag(reference, tag)
        for chunk in client.images.push(
            reference,
            tag=tag,
            auth_config={"username": USER, "password": self.password},
            stream=True,
            decode=True,
        ):
            assert "error" not in chunk, chunk
        # Gone from the daemon by name and by digest, so that using it means pulling it.
        for name in client.images.get(f"{reference}:{tag}").attrs["RepoDigests"]:
            if name.startswith(f"{reference}@"):
                client.images.remove(name)
        client.images.remove(f"{reference}:{tag}")


@pytest.fixture(scope="session")
def token_registry(
    docker_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TokenRegistry]:
    """The distribution registry in token mode over TLS; its token issuer grants the builder
    pull and push everywhere, and anyone pull on `public/`."""
    folder = tmp_path_factory.mktemp("token-registry")
    signer = Certificate.make(folder, "signer")
    tls = Certificate.make(folder, "tls")
    password = f"pw-{secrets.token_hex(12)}"
    issuer = TokenIssuer(signer, {USER: password})
    with serving(issuer.handler(), tls) as realm:
        running = start_registry(folder, token_block(realm, signer), tls)
        try:
            yield TokenRegistry(running, issuer, password)
        finally:
            running.stop()
            forget_images(running.host)


def build_output(result: object) -> str:
    return f"{getattr(result, 'out', '')}{getattr(result, 'err', '')}"


def test_token_mode_push_with_credentials_and_refused_ones_name_the_host(
    token_registry: TokenRegistry, scratch: Path
) -> None:
    host = token_registry.host
    write_files(scratch, {"environments/secured/environment.yaml": CHILD.format(name="secured")})
    wrong = run_envrepo(
        "build", "--push", "--registry", host, cwd=scratch, env=token_registry.env("not-it")
    )
    assert wrong.code == 1
    assert f"registry {host}: the credentials for {host} were refused (401)" in wrong.err
    assert "Traceback" not in wrong.err
    right = run_envrepo(
        "build", "--push", "--registry", host, cwd=scratch, env=token_registry.env()
    )
    assert right.code == 0, right.err[-2000:]
    assert any(
        user == USER and scope.startswith("repository:secured:") and "push" in scope
        for user, scope in token_registry.issuer.asked
    )
    again = run_envrepo(
        "plan", "--format", "json", "--registry", host, cwd=scratch, env=token_registry.env()
    )
    assert again.code == 0, again.err
    assert json.loads(again.out) == []
    assert again.err == ""
    shown = build_output(wrong) + build_output(right)
    logged = "".join(p.read_text() for p in (scratch / ".envrepo").rglob("*") if p.is_file())
    assert token_registry.password not in shown + logged
    assert "not-it" not in shown + logged


def test_token_mode_anonymous_pull_where_allowed_and_one_line_where_not(
    token_registry: TokenRegistry, built: Built, scratch: Path
) -> None:
    host = token_registry.host
    root = str(built.record("envrepo-bookworm")["image"])
    token_registry.push(root, "public/debian", "12")
    token_registry.push(root, "private/debian", "12")
    spec = 'name: {name}\nbase:\n  image: {image}\npython: "3.11"\nuser_managed: true\n'
    write_files(
        scratch,
        {
            "environments/open/environment.yaml": spec.format(
                name="open", image=f"{host}/public/debian:12"
            ),
            "environments/closed/environment.yaml": spec.format(
                name="closed", image=f"{host}/private/debian:12"
            ),
        },
    )
    # No credentials anywhere: the Docker config is an empty folder.
    anonymous = {"DOCKER_CONFIG": str(scratch / "no-docker-config")}
    locked = run_envrepo("lock", "open", cwd=scratch, env=anonymous)
    assert locked.code == 0, locked.err
    pinned = (scratch / "environments/open/base-image.lock").read_text().splitlines()[-1]
    assert pinned.startswith(f"{host}/public/debian:12@sha256:")
    assert ("", "repository:public/debian:pull") in token_registry.issuer.asked
    refused = run_envrepo("lock", "closed", cwd=scratch, env=anonymous)
    assert refused.code == 2
    [line] = [line for line in refused.err.splitlines() if "401" in line]
    assert f"registry {host}: HEAD private/debian:12 needs credentials (401)" in line
    assert "Traceback" not in refused.err
    built_open = run_envrepo("build", "open", cwd=scratch, env=anonymous)
    assert built_open.code == 0, built_open.err[-2000:]
    assert f"pulling {pinned}" in built_open.err
