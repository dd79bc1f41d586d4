"""The registry, through python-dxf (the distribution API v2 and its token flow, anonymous or
with credentials, or Basic): is a hash already built, a base image's digest and config, more
tags on a manifest that is already there.

An address may carry a path (`ghcr.io/org`, `host:port/team/sub`): the API lives at the
host's `/v2/`, and the path is the first part of every repository's name. How the host is
spoken to is `transport`'s; credentials go over HTTPS only."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import requests
import requests.exceptions
from dxf import DXF, DXFBase
from dxf import exceptions as dxf_errors

from envrepo.engine import oci
from envrepo.engine.credentials import Credentials, credentials, host_of
from envrepo.engine.reference import LOCAL, NO_REGISTRY
from envrepo.engine.transport import (
    INSECURE,
    TIMEOUT,
    again,
    ca_bundle,
    is_insecure,
    reason,
    speaks_tls,
)
from envrepo.errors import EnvrepoError

UPLOADS = 4  # blobs uploaded at once: measured, four keep a loopback registry busy
UPLOAD_CHUNK = 1 << 20


@dataclass
class Registry:
    """One registry address, spoken to over one connection with the credentials meant for
    its host."""

    address: str
    creds: Credentials | None = field(default=None, repr=False)
    # The repository's own registry, the one ENVREPO_REGISTRY_USERNAME/PASSWORD are for.
    own: bool = False
    _base: DXFBase | None = field(default=None, init=False, repr=False)
    _repos: dict[str, DXF] = field(default_factory=dict, init=False, repr=False)
    # Uploads and layer lookups ask from several threads; the connection is made once.
    _opening: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def host(self) -> str:
        return host_of(self.address)

    def path(self, name: str) -> str:
        """The repository `name` (an environment's, or a full path for an address without
        one) as the registry's API names it."""
        prefix = self.address[len(self.host) + 1 :]
        return f"{prefix}/{name}" if prefix else name

    def _repo(self, name: str) -> DXF:
        if self.address == LOCAL:
            raise EnvrepoError(NO_REGISTRY)
        with self._opening:
            return self._open(name)

    def _open(self, name: str) -> DXF:
        if self._base is None:
            insecure = is_insecure(self.host)
            tls = not insecure or speaks_tls(self.host)
            self._base = DXFBase(
                self.host,
                auth=self._authenticate,
                insecure=not tls,
                tlsverify=False if insecure else ca_bundle(),
                timeout=TIMEOUT,
            )
            # A session of its own keeps one connection (and TLS handshake) for all requests.
            self._base.__enter__()
        found = self._repos.get(name)
        if found is None:
            found = self._repos[name] = DXF.from_base(self._base, self.path(name))
        return found

    def _authenticate(self, dxf: DXFBase, response: requests.Response) -> None:
        if self.creds is None:
            dxf.authenticate(response=response)
        else:
            dxf.authenticate(self.creds.username, self.creds.password, response=response)

    @contextmanager
    def _answers(self, what: str) -> Iterator[None]:
        """Every way a request can fail, as one line naming the host."""
        try:
            yield
        except dxf_errors.DXFUnauthorizedError:
            login = f"docker login {self.host}" + (
                ", or set ENVREPO_REGISTRY_USERNAME and ENVREPO_REGISTRY_PASSWORD"
                if self.own
                else ""
            )
            if self.creds is None:
                raise EnvrepoError(
                    f"registry {self.host}: {what} needs credentials (401); {login}"
                ) from None
            raise EnvrepoError(
                f"registry {self.host}: the credentials for {self.host} were refused (401); "
                f"check them: {login}"
            ) from None
        except dxf_errors.DXFAuthInsecureError:
            raise EnvrepoError(
                f"registry {self.host}: asks for credentials over plain HTTP, and envrepo sends "
                "them only over HTTPS; serve it with TLS"
            ) from None
        except dxf_errors.DXFDigestMismatchError:
            raise EnvrepoError(
                f"registry {self.host}: {what}: the bytes it sent do not match their digest, so "
                "they were refused and nothing of them is kept; the registry's copy is damaged"
            ) from None
        except requests.exceptions.SSLError as error:
            raise EnvrepoError(
                f"registry {self.host}: its certificate is not trusted ({reason(error)}); add "
                f"its CA to the system's bundle or SSL_CERT_FILE, or list it in {INSECURE}"
            ) from None
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else "no status"
            raise EnvrepoError(f"registry {self.host}: {what} answered {status}") from None
        except (requests.exceptions.RequestException, OSError) as error:
            raise EnvrepoError(
                f"registry {self.host} does not answer ({reason(error)}); check that it runs "
                "and is reachable from here, or pass another --registry"
            ) from None
        except (dxf_errors.DXFError, ValueError, KeyError) as error:
            raise EnvrepoError(
                f"registry {self.host}: {what}: unexpected answer ({error})"
            ) from None

    def _absent(self, what: str, call: Callable[[], Any]) -> Any:
        """`call`'s result; None when the registry answers 404 (or there is none)."""
        if self.address == LOCAL:
            return None
        with self._answers(what):
            try:
                return again(call)
            except requests.exceptions.HTTPError as error:
                if error.response is not None and error.response.status_code == 404:
                    return None
                raise

    def tags(self, name: str) -> list[str]:
        """The tags of repository `name`; none when it has none or is not there."""
        found = self._absent(f"GET {self.path(name)} tags", lambda: self._repo(name).list_aliases())
        return [str(tag) for tag in found or []]

    def repositories(self) -> list[str]:
        """Every repository the registry lists (its catalog), by name."""
        if self.address == LOCAL:
            raise EnvrepoError(NO_REGISTRY)
        with self._answers("GET the catalog"):
            found = again(lambda: self._repo("catalog").list_repos())
        prefix = self.path("")
        return sorted(
            str(name)[len(prefix) :] for name in found or [] if str(name).startswith(prefix)
        )

    def manifest_digest(self, name: str, tag: str) -> str | None:
        """The digest of `name:tag`'s manifest; None when the registry has no such tag."""
        found = self._absent(
            f"HEAD {self.path(name)}:{tag}",
            lambda: self._repo(name).head_manifest_and_response(tag),
        )
        return None if found is None else str(found[0])

    def _manifest(self, name: str, reference: str) -> tuple[str, str] | None:
        """The manifest of `name` at `reference` and its digest; None when it is not there."""
        found = self._absent(
            f"GET {self.path(name)}:{reference}",
            lambda: self._repo(name).get_manifest_and_response(reference),
        )
        if found is None:
            return None
        response: requests.Response = found[1]
        return str(found[0]), str(response.headers.get("Docker-Content-Digest", ""))

    def manifest(self, name: str, reference: str) -> dict[str, Any] | None:
        """The manifest of `name` at `reference`, parsed; None when it is not there."""
        found = self._manifest(name, reference)
        if found is None:
            return None
        parsed: dict[str, Any] = json.loads(found[0])
        return parsed

    def platform_manifest(
        self, name: str, reference: str, architecture: str
    ) -> dict[str, Any] | None:
        """The image manifest of `name` at `reference`, for linux/`architecture` when that
        is an index of platforms; None when there is none."""
        manifest = self.manifest(name, reference)
        if manifest is None or "manifests" not in manifest:
            return manifest
        for entry in manifest["manifests"]:
            platform = entry.get("platform", {})
            if (platform.get("os"), platform.get("architecture")) == ("linux", architecture):
                return self.manifest(name, entry["digest"])
        return None

    def blob(self, name: str, digest: str) -> Iterator[bytes]:
        """The blob `digest` of repository `name`, chunk by chunk, checked against its digest
        once read to the end."""
        with self._answers(f"GET {self.path(name)} blob {digest[:19]}"):
            yield from cast(
                Iterable[bytes], self._repo(name).pull_blob(digest, chunk_size=UPLOAD_CHUNK)
            )

    def image_config(self, name: str, reference: str, architecture: str) -> dict[str, Any] | None:
        """The config of image `name` at `reference` (for linux/`architecture` when that is an
        index of platforms); None when the registry has no such image."""
        manifest = self.platform_manifest(name, reference, architecture)
        if manifest is None:
            return None
        config = manifest["config"]["digest"]
        blob = b"".join(self.blob(name, config))
        image: dict[str, Any] = json.loads(blob)
        return image

    def _put_blob(
        self, name: str, blob: Upload, sources: Sequence[str], stop: threading.Event | None
    ) -> bool:
        """Make `blob` part of repository `name`: nothing when it is there, mounted from a
        repository of `sources` that has it, uploaded otherwise. Whether it was uploaded."""
        repo = self._repo(name)
        with self._answers(f"HEAD {self.path(name)} blob {blob.digest[:19]}"):
            try:
                repo.blob_size(blob.digest)
                return False
            except requests.exceptions.HTTPError as error:
                if error.response is None or error.response.status_code != 404:
                    raise
        for source in sources:
            try:
                with self._answers(f"mounting {blob.digest[:19]} from {source}"):
                    repo.mount_blob(source, blob.digest)
                return False
            except (EnvrepoError, dxf_errors.DXFMountFailed):
                continue
        if blob.path is not None:
            chunks: Iterable[bytes] = _file_chunks(blob.path)
        elif blob.fetch is not None:
            chunks = blob.fetch()
        else:
            raise EnvrepoError(
                f"registry {self.host}: blob {blob.digest[:19]} is in none of "
                f"{', '.join([self.path(name), *sources])} any more; build again"
            )
        with self._answers(f"uploading {blob.digest[:19]} to {self.path(name)}"):
            repo.push_blob(data=_stoppable(chunks, stop), digest=blob.digest, check_exists=False)
        return True

    def put_blobs(
        self,
        name: str,
        blobs: Sequence[Upload],
        sources: Sequence[str] = (),
        stop: threading.Event | None = None,
    ) -> int:
        """Make `blobs` part of repository `name`, several at a time: what it has is skipped,
        what a repository of `sources` (paths on this host) has is mounted, the rest uploaded.
        How many were uploaded. Setting `stop` ends the uploads at their next chunk."""
        unique = list({blob.digest: blob for blob in blobs}.values())
        with ThreadPoolExecutor(UPLOADS) as pool:
            done = pool.map(lambda blob: self._put_blob(name, blob, sources, stop), unique)
            return sum(done)

    def put_manifest(
        self,
        name: str,
        config: Upload,
        layers: Sequence[Upload],
        media_type: str,
        tags: Sequence[str],
        annotations: Mapping[str, str] | None = None,
        artifact_type: str | None = None,
    ) -> str:
        """The manifest (its blobs are there) under each of `tags` in order; its digest.
        Written last, so that a tag only ever names a whole image."""
        body = oci.manifest_body(config, layers, media_type, annotations, artifact_type)
        for tag in tags:
            with self._answers(f"tagging {self.path(name)}:{tag}"):
                again(partial(self._repo(name).set_manifest, tag, body))
        return "sha256:" + hashlib.sha256(body.encode()).hexdigest()

    def add_tags(self, name: str, existing: str, tags: list[str]) -> str:
        """Put the manifest of `name:existing` under `tags` as well; its digest."""
        found = self._manifest(name, existing)
        if found is None:
            raise EnvrepoError(f"registry {self.host}: {self.path(name)}:{existing} is not there")
        body, digest = found
        for tag in tags:
            with self._answers(f"tagging {self.path(name)}:{tag}"):
                again(partial(self._repo(name).set_manifest, tag, body))
        return digest


@dataclass(frozen=True)
class Upload:
    """A blob to put in the registry, by the digest and size it has there: from a file, or
    read from another registry (`fetch`), or (neither) one an ancestor's repository has."""

    digest: str
    size: int
    path: Path | None
    media_type: str
    fetch: Callable[[], Iterable[bytes]] | None = field(default=None, compare=False)


class Stopped(Exception):
    """An upload ended on purpose (Ctrl-C, a failed test): the registry keeps no tag of it."""


def _stoppable(chunks: Iterable[bytes], stop: threading.Event | None) -> Iterator[bytes]:
    for chunk in chunks:
        if stop is not None and stop.is_set():
            raise Stopped
        yield chunk


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK):
            yield chunk


def connect(address: str, configured: str | None) -> Registry:
    """The registry at `address`, with the credentials meant for its host; `configured` is
    the repository's own registry (see `credentials`)."""
    own = configured is not None and host_of(address) == host_of(configured)
    return Registry(address, credentials(host_of(address), configured), own)
