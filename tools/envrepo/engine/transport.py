"""How envrepo speaks to a registry's host: HTTPS checked against the system's CA bundle; a
loopback host, or one named in ENVREPO_INSECURE_REGISTRIES, over HTTPS without that check and
then over plain HTTP, as Docker treats such hosts; a request that is safe to repeat tried
again when the registry fails it with a 5xx."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import requests.exceptions

from envrepo.engine.reference import is_loopback

TIMEOUT = 10
INSECURE = "ENVREPO_INSECURE_REGISTRIES"


def is_insecure(host: str) -> bool:
    """Whether `host` may be spoken to without a checked certificate, or over plain HTTP."""
    named = {h.strip() for h in os.environ.get(INSECURE, "").split(",") if h.strip()}
    return is_loopback(host) or host in named


def ca_bundle() -> str | bool:
    """The system's CA bundle (SSL_CERT_FILE when set), as curl and git use it."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return True


def speaks_tls(host: str) -> bool:
    """Whether `host` completes a TLS handshake: a bare one, with no CA bundle to load,
    since such a host's certificate is not checked anyway (see is_insecure)."""
    name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "443")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((name.strip("[]"), int(port or 443)), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw),
        ):
            return True
    except (OSError, ValueError):
        # No TLS there, or nothing at all: plain HTTP, whose failure then says so.
        return False


# Seconds between the tries of a request that is safe to repeat (a manifest read, a tag
# written), when the registry failed it with a 5xx: the distribution registry answers 500
# while another client writes the link files of the same manifest, which it rewrites in place.
PAUSES = (0.2, 0.5, 1.0)


def again(call: Callable[[], Any]) -> Any:
    for pause in PAUSES:
        try:
            return call()
        except requests.exceptions.HTTPError as error:
            if error.response is None or error.response.status_code < 500:
                raise
        time.sleep(pause)
    return call()


def reason(error: Exception) -> str:
    """The innermost cause requests and urllib3 wrap an error in, short."""
    while error.args and isinstance(error.args[0], Exception):
        error = error.args[0]
    text = str(getattr(error, "reason", None) or error)
    return text.rsplit(": ", 1)[-1] if len(text) > 120 else text
