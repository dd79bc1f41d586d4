"""The registry, spoken to directly (distribution API v2): is a hash already built, and
adding tags to a manifest that is already there. Credentials come from the environment or
the Docker config and are never printed or logged."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envrepo.errors import EnvrepoError

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
TIMEOUT = 10


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"

    def for_docker(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password}


def credentials(host: str) -> Credentials | None:
    """ENVREPO_REGISTRY_USERNAME/PASSWORD, else the Docker config's entry for `host`."""
    user = os.environ.get("ENVREPO_REGISTRY_USERNAME")
    password = os.environ.get("ENVREPO_REGISTRY_PASSWORD")
    if user and password is not None:
        return Credentials(user, password)
    config_dir = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    try:
        config = json.loads((config_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    entry = config.get("auths", {}).get(host, {})
    if "auth" not in entry:
        return None
    name, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
    return Credentials(name, secret)


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in ("localhost", "::1", "[::1]") or name.startswith("127.")


@dataclass(frozen=True)
class Registry:
    host: str
    creds: Credentials | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"{'http' if is_loopback(self.host) else 'https'}://{self.host}/v2"

    def _request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            f"{self.base}/{path}", data=data, method=method, headers=dict(headers or {})
        )
        if self.creds is not None:
            request.add_header("Authorization", self.creds.basic())
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            if error.code == 401:
                raise EnvrepoError(
                    f"registry {self.host}: the credentials were refused (401); set "
                    "ENVREPO_REGISTRY_USERNAME and ENVREPO_REGISTRY_PASSWORD or docker login"
                ) from None
            return error.code, dict(error.headers), b""
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise EnvrepoError(
                f"registry {self.host} does not answer ({reason}); start it "
                "(scripts/services.sh) or pass another --registry"
            ) from None

    def _manifest(
        self, method: str, name: str, reference: str
    ) -> tuple[dict[str, str], bytes] | None:
        """The headers and body of the manifest of `name` at `reference`; None when the
        registry has none."""
        status, headers, body = self._request(
            method, f"{name}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES}
        )
        if status == 404:
            return None
        if status != 200:
            raise EnvrepoError(
                f"registry {self.host}: {method} {name}:{reference} answered {status}"
            )
        return headers, body

    def manifest_digest(self, name: str, tag: str) -> str | None:
        found = self._manifest("HEAD", name, tag)
        return None if found is None else found[0].get("Docker-Content-Digest")

    def image_config(self, name: str, reference: str, architecture: str) -> dict[str, Any] | None:
        """The config of image `name` at `reference` (for linux/`architecture` when that is an
        index of platforms); None when the registry has no such image."""
        found = self._manifest("GET", name, reference)
        if found is None:
            return None
        manifest = json.loads(found[1])
        if "manifests" in manifest:
            wanted = {"os": "linux", "architecture": architecture}
            for entry in manifest["manifests"]:
                platform = entry.get("platform", {})
                if all(platform.get(key) == value for key, value in wanted.items()):
                    return self.image_config(name, entry["digest"], architecture)
            return None
        config = manifest["config"]["digest"]
        status, _, blob = self._request("GET", f"{name}/blobs/{config}")
        if status != 200:
            raise EnvrepoError(
                f"registry {self.host}: GET {name} config {config} answered {status}"
            )
        image: dict[str, Any] = json.loads(blob)
        return image

    def add_tags(self, name: str, existing: str, tags: list[str]) -> str:
        """Put the manifest of `name:existing` under `tags` as well; its digest."""
        found = self._manifest("GET", name, existing)
        if found is None:
            raise EnvrepoError(f"registry {self.host}: {name}:{existing} is not there")
        headers, body = found
        content_type = headers.get("Content-Type", MANIFEST_TYPES.split(", ")[0])
        for tag in tags:
            put, _, _ = self._request(
                "PUT",
                f"{name}/manifests/{urllib.parse.quote(tag)}",
                data=body,
                headers={"Content-Type": content_type},
            )
            if put not in (200, 201):
                raise EnvrepoError(f"registry {self.host}: tagging {name}:{tag} answered {put}")
        return headers.get("Docker-Content-Digest", "")


def connect(host: str) -> Registry:
    """The registry at `host`, with the credentials meant for it."""
    return Registry(host, credentials(host))
