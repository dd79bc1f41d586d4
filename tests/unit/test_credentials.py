"""Which credentials go to which registry host, read from a real Docker config and real
docker-credential-* programs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from envrepo.engine.credentials import Credentials, credentials
from envrepo.errors import EnvrepoError


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Docker config folder, a bin folder on PATH, and no ENVREPO_REGISTRY_*."""
    folder = tmp_path / "docker"
    folder.mkdir()
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    monkeypatch.setenv("PATH", f"{bin_folder}:/usr/bin:/bin")
    monkeypatch.delenv("ENVREPO_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("ENVREPO_REGISTRY_PASSWORD", raising=False)
    return folder / "config.json"


def helper(config: Path, name: str, holds: dict[str, tuple[str, str]]) -> None:
    """docker-credential-`name`, holding `holds` (server → user, secret)."""
    cases = "".join(
        f'  "{server}") echo \'{{"Username": "{user}", "Secret": "{secret}"}}\' ;;\n'
        for server, (user, secret) in holds.items()
    )
    program = config.parent.parent / "bin" / f"docker-credential-{name}"
    program.write_text(
        '#!/bin/sh\nread -r server\ncase "$server" in\n'
        f"{cases}"
        "  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n"
    )
    program.chmod(0o755)


def test_the_variables_go_to_the_configured_registry_only(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVREPO_REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("ENVREPO_REGISTRY_PASSWORD", "s3cret")
    assert credentials("ghcr.io", "ghcr.io/org") == Credentials("ci", "s3cret")
    assert credentials("registry.example:5000", "ghcr.io/org") is None
    assert credentials("ghcr.io", None) is None


def test_helper_for_the_host_then_the_store_then_auths(docker_config: Path) -> None:
    docker_config.write_text(
        json.dumps(
            {
                "credHelpers": {"one.example": "one"},
                "credsStore": "store",
                "auths": {
                    "one.example": {"auth": basic("from-auths", "x")},
                    "https://three.example": {"auth": basic("three", "pw3")},
                },
            }
        )
    )
    helper(docker_config, "one", {"one.example": ("from-helper", "pw1")})
    helper(docker_config, "store", {"two.example": ("from-store", "pw2")})
    assert credentials("one.example", None) == Credentials("from-helper", "pw1")
    assert credentials("two.example", None) == Credentials("from-store", "pw2")
    assert credentials("three.example", None) == Credentials("three", "pw3")
    assert credentials("four.example", None) is None


def test_docker_hub_is_found_under_the_key_docker_login_writes(docker_config: Path) -> None:
    docker_config.write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": basic("hub", "pw")}}})
    )
    assert credentials("registry-1.docker.io", None) == Credentials("hub", "pw")
    assert credentials("docker.io", None) == Credentials("hub", "pw")


@pytest.mark.parametrize(
    ("auth", "what"),
    [
        ("!!!not base64", "is not base64, not base64 of user:password"),
        (base64.b64encode(b"\xff\xfe:\xfd").decode(), "is not UTF-8, not base64 of user:password"),
        (base64.b64encode(b"no-colon").decode(), "is not base64 of user:password"),
    ],
)
def test_a_malformed_auth_entry_is_one_line_naming_the_file_and_host(
    docker_config: Path, auth: str, what: str
) -> None:
    docker_config.write_text(json.dumps({"auths": {"ghcr.io": {"auth": auth}}}))
    with pytest.raises(EnvrepoError) as raised:
        credentials("ghcr.io", None)
    assert raised.value.lines == (
        f"{docker_config}: auths.ghcr.io.auth: {what}; run docker login ghcr.io again",
    )


def test_a_missing_helper_or_an_identity_token_is_one_line(docker_config: Path) -> None:
    docker_config.write_text(json.dumps({"credsStore": "absent"}))
    with pytest.raises(EnvrepoError) as raised:
        credentials("ghcr.io", None)
    assert raised.value.lines == (
        f"{docker_config}: credsStore: docker-credential-absent is not on PATH; install it or "
        "remove the setting",
    )
    docker_config.write_text(json.dumps({"auths": {"acr.example": {"identitytoken": "t"}}}))
    with pytest.raises(EnvrepoError) as raised:
        credentials("acr.example", None)
    assert "holds an identity token for acr.example" in raised.value.lines[0]
    docker_config.write_text("{not json")
    with pytest.raises(EnvrepoError) as raised:
        credentials("ghcr.io", None)
    assert raised.value.lines[0].startswith(f"{docker_config}: cannot be read as JSON")
