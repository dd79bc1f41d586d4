"""Registries of the tests' own, all the real distribution registry (Debian's docker-registry)
from the project's config template: plain, with htpasswd over TLS, in token mode with a token
issuer that signs real JWTs, and a recording proxy in front of one."""

from __future__ import annotations

import base64
import datetime
import http.client
import http.server
import ipaddress
import json
import re
import secrets
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATE = PROJECT / "scripts" / "registry.yml.in"
SERVICE = "envrepo-tests"
ISSUER = "envrepo-tests-issuer"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Certificate:
    """A key and a certificate for 127.0.0.1 and localhost, signed by itself (so that it is
    its own CA bundle: the registry's rootcertbundle, or a client's trust)."""

    cert: Path
    key: Path

    @classmethod
    def make(cls, folder: Path, name: str, issuer: Certificate | None = None) -> Certificate:
        """Signed by itself, or with `issuer` a server's certificate that `issuer` signed
        (what a client such as uv, which refuses a CA as a server's certificate, trusts)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        signer: Any = key
        issued_by = subject
        if issuer is not None:
            signer = serialization.load_pem_private_key(issuer.key.read_bytes(), None)
            issued_by = x509.load_pem_x509_certificate(issuer.cert.read_bytes()).subject
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issued_by)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True
            )
        )
        if issuer is not None:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        cert = builder.sign(signer, hashes.SHA256())
        made = cls(folder / f"{name}.crt", folder / f"{name}.key")
        made.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        made.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return made

    def der_base64(self) -> str:
        return base64.b64encode(ssl.PEM_cert_to_DER_cert(self.cert.read_text())).decode()


@dataclass
class RunningRegistry:
    host: str
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def start_registry(
    folder: Path, auth: str = "", tls: Certificate | None = None, log_requests: bool = False
) -> RunningRegistry:
    """The registry on a free loopback port with the project's config template; `auth` is the
    config's `auth:` block, `tls` its certificate; with `log_requests`, its log has a line per
    request (see `requests_logged`)."""
    port = free_port()
    (folder / "data").mkdir(parents=True, exist_ok=True)
    tls_block = (
        f"  tls:\n    certificate: {tls.cert}\n    key: {tls.key}" if tls is not None else ""
    )
    config = (
        TEMPLATE.read_text()
        .replace("@PORT@", str(port))
        .replace("@ROOT@", str(folder))
        .replace("@TLS@", tls_block)
        .replace("@AUTH@", auth)
        .replace("level: warn", "level: info" if log_requests else "level: warn")
    )
    (folder / "config.yml").write_text(config)
    with (folder / "registry.log").open("wb") as log:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(folder / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = RunningRegistry(f"127.0.0.1:{port}", folder, process)
    scheme = "https" if tls is not None else "http"
    context = ssl._create_unverified_context()
    for _ in range(100):
        connection = (
            http.client.HTTPSConnection(running.host, context=context, timeout=2)
            if scheme == "https"
            else http.client.HTTPConnection(running.host, timeout=2)
        )
        try:
            connection.request("GET", "/v2/")
            if connection.getresponse().status in (200, 401):
                return running
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    running.stop()
    pytest.fail(f"the registry did not answer; see {folder / 'registry.log'}")


def requests_logged(running: RunningRegistry) -> list[tuple[str, str]]:
    """(method, URI) of every request the registry's log says it answered."""
    found = []
    for line in (running.folder / "registry.log").read_text().splitlines():
        method = re.search(r"http\.request\.method=(\w+)", line)
        uri = re.search(r'http\.request\.uri="([^"]*)"', line)
        if "response completed" in line and method and uri:
            found.append((method.group(1), uri.group(1)))
    return found


def htpasswd_block(folder: Path, users: dict[str, str]) -> str:
    lines = []
    for user, password in users.items():
        done = subprocess.run(
            ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"htpasswd (apache2-utils) is needed for the auth registry: {done.stderr}")
        lines.append(done.stdout.strip())
    path = folder / "htpasswd"
    path.write_text("\n".join(lines) + "\n")
    return f"auth:\n  htpasswd:\n    realm: envrepo\n    path: {path}"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def serving(
    handler: type[http.server.BaseHTTPRequestHandler],
    tls: Certificate | None,
    address: str = "127.0.0.1",
) -> Iterator[str]:
    """`handler` on a free port of a loopback `address` (over TLS with `tls`) in a thread;
    its host:port."""
    server = _Server((address, 0), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{address}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class TokenIssuer:
    """The token service of a registry in token mode (its realm): Basic credentials or none
    in, a JWT signed with `signer` out, with the access `users` and `public` allow. Every
    request it answered is in `asked` as (user, scope)."""

    signer: Certificate
    users: dict[str, str]
    public: tuple[str, ...] = ("public/",)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def grant(self, user: str, scope: str) -> list[dict[str, object]]:
        granted = []
        for item in scope.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = set(actions.split(","))
            allowed = wanted & {"pull", "push"} if user else set()
            if not user and any(name.startswith(prefix) for prefix in self.public):
                allowed = wanted & {"pull"}
            granted.append({"type": kind, "name": name, "actions": sorted(allowed)})
        return granted

    def token(self, user: str, scope: str) -> str:
        import jwt

        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": self.grant(user, scope),
        }
        return jwt.encode(
            claims,
            self.signer.key.read_text(),
            algorithm="RS256",
            headers={"x5c": [self.signer.der_base64()]},
        )

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                scope = " ".join(query.get("scope", []))
                user = ""
                given = self.headers.get("Authorization", "")
                if given.startswith("Basic "):
                    name, _, password = base64.b64decode(given[6:]).decode().partition(":")
                    if issuer.users.get(name) != password:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        issuer.asked.append((f"refused:{name}", scope))
                        return
                    user = name
                issuer.asked.append((user, scope))
                token = issuer.token(user, scope)
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        return Handler


def token_block(realm: str, signer: Certificate) -> str:
    return (
        f"auth:\n  token:\n    realm: https://{realm}/token\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {signer.cert}"
    )


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class RecordingProxy:
    """A reverse proxy in front of the registry at `target` (over TLS with `tls`) that keeps
    the method, path and Authorization header of every request it forwards."""

    target: str
    tls: bool = False
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    # With hold_uploads, a blob upload's last request waits at the door for `release`;
    # `held` says one does.
    hold_uploads: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def body(self, handler: http.server.BaseHTTPRequestHandler) -> bytes | None:
        """The request's body, whole (chunked or not)."""
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(handler.rfile.readline().split(b";")[0], 16):
                parts.append(handler.rfile.read(size))
                handler.rfile.readline()
            handler.rfile.readline()
            return b"".join(parts)
        length = int(handler.headers.get("Content-Length") or 0)
        return handler.rfile.read(length) if length else None

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def forward(self) -> None:
                proxy.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
                body = proxy.body(self)
                if proxy.hold_uploads and self.command == "PUT" and "/blobs/uploads/" in self.path:
                    proxy.held.set()
                    proxy.release.wait(300)
                upstream = (
                    http.client.HTTPSConnection(
                        proxy.target, timeout=60, context=ssl._create_unverified_context()
                    )
                    if proxy.tls
                    else http.client.HTTPConnection(proxy.target, timeout=60)
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body is not None:
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)
                upstream.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        return Handler
