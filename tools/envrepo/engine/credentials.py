"""Credentials for one registry host, read where Docker keeps them, and only ever for that
host. In order: ENVREPO_REGISTRY_USERNAME/PASSWORD (for the configured registry only), the
Docker config's `credHelpers` entry for the host, its `credsStore`, its `auths` entry for the
host. A secret is never printed or logged."""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envrepo.errors import fail

USERNAME = "ENVREPO_REGISTRY_USERNAME"
PASSWORD = "ENVREPO_REGISTRY_PASSWORD"
# Docker Hub answers under several names; Docker keeps its credentials under this key.
DOCKER_HUB = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
HELPER_TIMEOUT = 30
IDENTITY_TOKEN = "<token>"  # the user name a helper gives with an OAuth refresh token


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def for_docker(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


def host_of(address: str) -> str:
    """The host[:port] of a registry address that may carry a path (`ghcr.io/org`)."""
    return address.split("/", 1)[0]


def _same_host(key: str, host: str) -> bool:
    """Whether a Docker config key (`ghcr.io`, `https://ghcr.io/v1/`) names `host`."""

    def plain(name: str) -> str:
        bare = host_of(name.removeprefix("https://").removeprefix("http://"))
        return "docker.io" if bare in DOCKER_HUB_HOSTS else bare

    return plain(key) == plain(host)


def credentials(host: str, configured: str | None) -> Credentials | None:
    """The credentials meant for registry `host`; `configured` is the repository's own
    registry (the only one the ENVREPO_REGISTRY_* variables are for)."""
    if configured is not None and host == host_of(configured):
        user, password = os.environ.get(USERNAME), os.environ.get(PASSWORD)
        if user and password is not None:
            return Credentials(user, password)
    return _from_docker_config(host)


def docker_config() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _from_docker_config(host: str) -> Credentials | None:
    path = docker_config()
    try:
        config: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise fail(
            str(path), "", f"cannot be read as JSON ({error}); fix it or set DOCKER_CONFIG"
        ) from None
    if not isinstance(config, dict):
        raise fail(str(path), "", "is not a JSON object; fix it or set DOCKER_CONFIG")
    helpers = config.get("credHelpers") or {}
    helper = next((v for k, v in helpers.items() if _same_host(k, host)), None)
    setting = f"credHelpers.{host}" if helper else "credsStore"
    helper = helper or config.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(path, setting, helper, host)
        if found is not None:
            return found
    auths = config.get("auths") or {}
    key = next((k for k in auths if _same_host(k, host)), None)
    return None if key is None else _from_auths_entry(path, key, auths[key], host)


def _from_auths_entry(path: Path, key: str, entry: Any, host: str) -> Credentials | None:
    where = f"auths.{key}"
    if not isinstance(entry, dict):
        raise fail(str(path), where, f"is not an object; run docker login {host} again")
    if entry.get("identitytoken"):
        raise _identity_token(path, where, host)
    if entry.get("username") and entry.get("password") is not None:
        return Credentials(str(entry["username"]), str(entry["password"]))
    if not entry.get("auth"):
        return None
    try:
        decoded = base64.b64decode(str(entry["auth"]), validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as error:
        reason = "not UTF-8" if isinstance(error, UnicodeDecodeError) else "not base64"
        raise fail(
            str(path),
            f"{where}.auth",
            f"is {reason}, not base64 of user:password; run docker login {host} again",
        ) from None
    user, colon, secret = decoded.partition(":")
    if not colon or not user:
        raise fail(
            str(path),
            f"{where}.auth",
            f"is not base64 of user:password; run docker login {host} again",
        )
    return Credentials(user, secret)


def _from_helper(path: Path, setting: str, helper: str, host: str) -> Credentials | None:
    """What `docker-credential-<helper> get` holds for `host`; None when it holds nothing."""
    program = f"docker-credential-{helper}"
    found = shutil.which(program)
    if found is None:
        raise fail(
            str(path), setting, f"{program} is not on PATH; install it or remove the setting"
        )
    server = DOCKER_HUB if _same_host(host, "docker.io") else host
    try:
        done = subprocess.run(
            [found, "get"],
            input=server,
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise fail(
            str(path), setting, f"{program} get did not answer within {HELPER_TIMEOUT} s"
        ) from None
    if done.returncode != 0:
        said = (done.stdout + done.stderr).strip()
        if "credentials not found" in said.lower():
            return None
        first = said.splitlines()[0] if said else f"exit status {done.returncode}"
        raise fail(str(path), setting, f"{program} get failed for {host}: {first}")
    try:
        answer = json.loads(done.stdout)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise fail(
            str(path), setting, f"{program} get gave no Username and Secret for {host}"
        ) from None
    if user == IDENTITY_TOKEN:
        raise _identity_token(path, setting, host)
    return Credentials(user, secret)


def _identity_token(path: Path, where: str, host: str) -> Exception:
    return fail(
        str(path),
        where,
        f"holds an identity token for {host}, which envrepo cannot use yet; log in with a "
        "user name and a password or access token",
    )
