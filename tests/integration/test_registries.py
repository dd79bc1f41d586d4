"""envrepo against registries as teams run them: in token mode (a Bearer challenge, a token
issuer signing real JWTs), over TLS, with a path in the address, and next to another
registry that must never see the first one's credentials."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from registries import (
    Certificate,
    RecordingProxy,
    htpasswd_block,
    serving,
    start_registry,
)
from support import (
    CHILD,
    Built,
    RepoMaker,
    TokenRegistry,
    forget_images,
    local_tags,
    run_envrepo,
    tags_of,
    token_mode,
    write_files,
)

USER = "builder"


@pytest.fixture(scope="session")
def token_registry(
    docker_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TokenRegistry]:
    """The builder may pull and push; anyone may pull what is under `public/`."""
    with token_mode(tmp_path_factory.mktemp("token-registry"), USER, ("public/",)) as running:
        yield running


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
    # Built for the scratch repository's own registry, without a push: only tagged here.
    for tag in local_tags("open"):
        docker.from_env().images.remove(tag)
    assert built_open.code == 0, built_open.err[-2000:]
    assert f"pulling {pinned}" in built_open.err


def test_a_registry_with_a_path_finds_what_it_pushed_and_builds_nothing_twice(
    built: Built, scratch: Path
) -> None:
    host = built.registry.host
    address = f"{host}/team/sub"
    first = run_envrepo("build", "--push", "--registry", address, cwd=scratch)
    assert first.code == 0, first.err[-2000:]
    assert any(t.startswith("h-") for t in tags_of(host, "team/sub/envrepo-bookworm"))
    planned = run_envrepo("plan", "--format", "json", "--registry", address, cwd=scratch)
    assert planned.code == 0, planned.err
    assert json.loads(planned.out) == []
    second = run_envrepo("build", "--push", "--registry", address, cwd=scratch)
    assert second.code == 0, second.err[-2000:]
    assert "0 built" in second.err
    assert "pushed" not in second.err


def write_helper(folder: Path, host: str, password: str) -> Path:
    """A docker-credential-* program that holds the builder's credentials for `host` only, and
    records every host it is asked about."""
    helper = folder / "docker-credential-envrepotest"
    asked = folder / "helper-asked"
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read -r server\n"
        f'echo "$server" >> {asked}\n'
        f'if [ "$server" = "{host}" ]; then\n'
        f'  echo \'{{"ServerURL": "{host}", "Username": "{USER}", "Secret": "{password}"}}\'\n'
        "else\n"
        "  echo 'credentials not found in native keychain'; exit 1\n"
        "fi\n"
    )
    helper.chmod(0o755)
    return asked


def test_credentials_never_reach_another_host(
    token_registry: TokenRegistry, built: Built, scratch: Path, tmp_path: Path
) -> None:
    """The configured registry's credentials (from the environment variables and from a
    credential helper) go to it and to nothing else. The base image comes from a second
    registry that lets anyone pull but challenges every client, as hosted registries do, so
    a client holding credentials for it would send them: a recording proxy in front of it and
    its token issuer see none."""
    with token_mode(tmp_path / "other", "publisher", ("",)) as other:
        other.push(str(built.record("envrepo-bookworm")["image"]), "proxied/debian", "12")
        proxy = RecordingProxy(other.host, tls=True)
        config = tmp_path / "docker-config"
        config.mkdir()
        (config / "config.json").write_text(json.dumps({"credsStore": "envrepotest"}))
        asked = write_helper(tmp_path, token_registry.host, token_registry.password)
        with serving(proxy.handler(), Certificate.make(tmp_path, "proxy")) as proxied:
            write_files(
                scratch,
                {
                    "environments/proxied/environment.yaml": (
                        f"name: proxied\nbase:\n  image: {proxied}/proxied/debian:12\n"
                        'python: "3.11"\nuser_managed: true\n'
                    )
                },
            )
            env = {
                **token_registry.env(),
                "DOCKER_CONFIG": str(config),
                "PATH": f"{tmp_path}:{os.environ['PATH']}",
                "ENVREPO_REGISTRY": token_registry.host,
            }
            locked = run_envrepo("lock", "proxied", cwd=scratch, env=env)
            assert locked.code == 0, locked.err
            pushed = run_envrepo("build", "proxied", "--push", cwd=scratch, env=env)
            assert pushed.code == 0, pushed.err[-2000:]
            # The helper alone (no variables) is enough for the configured registry.
            only_helper = {k: v for k, v in env.items() if not k.startswith("ENVREPO_REGISTRY_")}
            planned = run_envrepo("plan", "--format", "json", cwd=scratch, env=only_helper)
            forget_images(proxied)
            assert planned.code == 0, planned.err
            assert "proxied" not in [p["name"] for p in json.loads(planned.out)]
        seen_by_other = [user for user, _ in other.issuer.asked if user not in ("", other.user)]
    assert any("/blobs/" in path for _, path, _ in proxy.seen), "the daemon pulled the base"
    assert any(method == "HEAD" for method, _, _ in proxy.seen), "lock asked for the digest"
    assert all(auth == "" or auth.startswith("Bearer ") for _, _, auth in proxy.seen)
    assert seen_by_other == [], "the other registry's issuer was sent credentials"
    assert any(user == "" and "proxied" in scope for user, scope in other.issuer.asked)
    assert token_registry.host in asked.read_text().split()
    assert any(user == USER and "proxied" in scope for user, scope in token_registry.issuer.asked)


def test_a_malformed_docker_config_entry_stops_plan_with_one_line(
    make_repo: RepoMaker, tmp_path: Path
) -> None:
    root = make_repo("")
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {"127.0.0.1:9": {"auth": "%%%"}}}))
    result = run_envrepo(
        "plan", "--registry", "127.0.0.1:9/team", cwd=root, env={"DOCKER_CONFIG": str(config)}
    )
    assert result.code == 2
    assert result.err.splitlines() == [
        f"{config / 'config.json'}: auths.127.0.0.1:9.auth: is not base64, not base64 of "
        "user:password; run docker login 127.0.0.1:9 again"
    ]


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain-http"])
def test_basic_auth_over_tls_and_never_over_plain_http(
    make_repo: RepoMaker, tmp_path: Path, tls: bool
) -> None:
    """A registry with htpasswd (Basic) auth: the right credentials are taken, wrong ones are
    one line naming the host; over plain HTTP no credentials are sent at all."""
    root = make_repo("")
    digest = "sha256:" + "ab" * 32
    write_files(
        root,
        {"environments/one/environment.yaml": f"name: one\nbase: {{image: x@{digest}}}\n"},
    )
    folder = tmp_path / "basic"
    folder.mkdir()
    password = f"pw-{secrets.token_hex(8)}"
    certificate = Certificate.make(folder, "tls") if tls else None
    running = start_registry(folder, htpasswd_block(folder, {USER: password}), certificate)
    try:
        env = {"ENVREPO_REGISTRY_USERNAME": USER, "DOCKER_CONFIG": str(tmp_path / "none")}
        right = run_envrepo(
            "plan",
            "--format",
            "json",
            "--registry",
            running.host,
            cwd=root,
            env={**env, "ENVREPO_REGISTRY_PASSWORD": password},
        )
        wrong = run_envrepo(
            "plan",
            "--registry",
            running.host,
            cwd=root,
            env={**env, "ENVREPO_REGISTRY_PASSWORD": "not-it"},
        )
    finally:
        running.stop()
    if tls:
        assert right.code == 0, right.err
        assert [p["name"] for p in json.loads(right.out)] == ["one"]
        assert wrong.code == 2
        assert wrong.err.splitlines() == [
            f"registry {running.host}: the credentials for {running.host} were refused (401); "
            f"check them: docker login {running.host}, or set ENVREPO_REGISTRY_USERNAME and "
            "ENVREPO_REGISTRY_PASSWORD"
        ]
    else:
        for result in (right, wrong):
            assert result.code == 2
            assert result.err.splitlines() == [
                f"registry {running.host}: asks for credentials over plain HTTP, and envrepo "
                "sends them only over HTTPS; serve it with TLS"
            ]
