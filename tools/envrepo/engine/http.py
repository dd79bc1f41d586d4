"""The one HTTP client of envrepo (the published index, package files, sdists): one requests
session with keep-alive, timeouts, retries of idempotent requests, downloads streamed and
hashed as they arrive, and credentials kept to their origin: requests drops an Authorization
header on a redirect to another host (or from https to http), and envrepo never adds one
anywhere else. file:// URLs are read from the disk the same way."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, cast
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Seconds to connect, and between two reads of a response: a slow transfer is not a dead one.
TIMEOUT = (15, 60)
_CHUNK = 1 << 20


class HTTPError(Exception):
    """A request that did not succeed: `status` is the HTTP status, or None when no answer
    came (`reason` says why)."""

    def __init__(self, url: str, status: int | None, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url, self.status, self.reason = url, status, reason


@cache
def session() -> requests.Session:
    made = requests.Session()
    retries = Retry(
        total=3,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retries)
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made


@contextmanager
def _opened(url: str, headers: Mapping[str, str]) -> Iterator[IO[bytes]]:
    parts = urlsplit(url)
    if parts.scheme == "file":
        try:
            with Path(unquote(parts.path)).open("rb") as local:
                yield local
        except FileNotFoundError:
            raise HTTPError(url, 404, "no such file") from None
        except OSError as error:
            raise HTTPError(url, None, error.strerror or str(error)) from None
        return
    try:
        response = session().get(url, headers=dict(headers), stream=True, timeout=TIMEOUT)
    except requests.RequestException as error:
        raise HTTPError(url, None, _why(error)) from None
    with response:
        if response.status_code >= 400:
            raise HTTPError(url, response.status_code, str(response.reason))
        response.raw.decode_content = True
        yield cast(IO[bytes], response.raw)


def _why(error: requests.RequestException) -> str:
    cause: BaseException = error
    while cause.__context__ is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    return str(getattr(cause, "strerror", None) or cause).splitlines()[0][:200]


def get(url: str, headers: Mapping[str, str] | None = None, limit: int | None = None) -> bytes:
    """The body at `url`; at most `limit` bytes and one more, so a caller can tell it was
    longer."""
    with _opened(url, headers or {}) as body:
        try:
            return body.read(limit + 1 if limit is not None else -1)
        except (requests.RequestException, OSError) as error:
            raise HTTPError(url, None, f"the transfer broke off ({error})") from None


def download(url: str, target: Path, headers: Mapping[str, str] | None = None) -> str:
    """Stream `url` into `target` (written whole or not at all); the sha256 of what came."""
    digest = hashlib.sha256()
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with _opened(url, headers or {}) as body, partial.open("wb") as out:
            while chunk := body.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        partial.replace(target)
    except (requests.RequestException, OSError) as error:
        raise HTTPError(url, None, f"the transfer broke off ({error})") from None
    finally:
        partial.unlink(missing_ok=True)
    return digest.hexdigest()
