"""The scoring app, as it runs inside an inference image under uvicorn: Azure ML's contract as
azureml-inference-server-http keeps it (the entry script's `init()` once per worker, `run()` per
request on `POST /score` and `GET /score`, `inference_schema` decorators, `@rawhttp` with
`AMLRequest` / `AMLResponse`, `GET /swagger.json`, its error bodies and `x-ms-*` headers; see
entry.py), and where it is stricter or adds, it says so:

- 413 for a body over the limit, from its Content-Length or while it is read (a gzip body is
  decoded, and counted after decoding), without reading it all; 408 for a body that does not
  arrive
- 504 (Azure's server: 500) when `run()` passes the scoring timeout, and the worker then
  leaves so that uvicorn replaces it
- `/health/live` and `GET /` answer while the worker is up; `/health/ready` and `/score` answer
  503 until `init()` passed, and for good when it failed (never a restart loop)
- every response names the environment, its spec hash, image digest and the model's sha256;
  `/metrics` serves Prometheus metrics with the same labels

This package's serve/ files are copied into the image; app.py, entry.py and aml_api.py import only the standard
library, uvicorn's ASGI interface, prometheus_client, werkzeug and inference_schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import traceback
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Response

from envrepo.serve.entry import EntryScript, Refused, Request

ENTRY = os.environ["ENVREPO_ENTRY_SCRIPT"]
APP_ROOT = os.environ.get("AML_APP_ROOT", str(Path(ENTRY).parent))
LIMIT = int(os.environ.get("ENVREPO_MAX_BODY", str(100 << 20)))
SCORING_TIMEOUT = float(os.environ.get("ENVREPO_SCORING_TIMEOUT", "60"))
READ_TIMEOUT = float(os.environ.get("ENVREPO_READ_TIMEOUT", "10"))
SERVICE = (
    os.environ.get("SERVICE_NAME", "ML service"),
    os.environ.get("SERVICE_VERSION", "1.0"),
    os.environ.get("SERVICE_PATH_PREFIX", ""),
)
IDENTITY = {
    "environment": os.environ.get("ENVREPO_ENVIRONMENT", ""),
    "spec_hash": os.environ.get("ENVREPO_SPEC_HASH", ""),
    "image_digest": os.environ.get("ENVREPO_IMAGE_DIGEST", ""),
    "model_sha256": os.environ.get("ENVREPO_MODEL_SHA256", ""),
}
Headers = list[tuple[bytes, bytes]]
HEADERS: Headers = [
    (b"x-envrepo-environment", IDENTITY["environment"].encode()),
    (b"x-envrepo-spec-hash", IDENTITY["spec_hash"].encode()),
    (b"x-envrepo-image-digest", IDENTITY["image_digest"].encode()),
    (b"x-envrepo-model-sha256", IDENTITY["model_sha256"].encode()),
]
JSON = b"application/json"
PATHS = ("/score", "/", "/health/live", "/health/ready", "/metrics", "/swagger.json")
ROUTES = {
    *(("/score", method) for method in ("POST", "GET", "OPTIONS")),
    *((path, "GET") for path in PATHS if path != "/score"),
}
# Azure's server answers 431 to a request ID longer than this.
ID_LIMIT = 100
RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL = "An unexpected internal error occurred. Check the logs for more info."
LABELS = list(IDENTITY)
REQUESTS = Counter("envrepo_requests", "Requests answered", ["path", "status", *LABELS])
ERRORS = Counter("envrepo_errors", "Requests answered with an error", ["path", "status", *LABELS])
LATENCY = Histogram(
    "envrepo_request_seconds",
    "Time to answer a request",
    ["path", *LABELS],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class Scorer:
    """The entry script of this worker: loaded and initialised once, off the event loop."""

    def __init__(self) -> None:
        self.script: EntryScript | None = None
        self.failed: str | None = None
        self.ready = threading.Event()
        self.finished = threading.Event()  # init() returned or raised
        self.pool = ThreadPoolExecutor(max_workers=int(os.environ.get("ENVREPO_THREADS", "4")))

    def start(self) -> None:
        try:
            script = EntryScript(ENTRY, APP_ROOT)
            script.init()
            self.script = script
            self.ready.set()
            print("envrepo serve: init() passed; ready", file=sys.stderr, flush=True)
        except BaseException as error:  # noqa: BLE001 - a failed init() is a state, not a crash
            self.failed = f"init() failed: {type(error).__name__}"
            traceback.print_exc()
            print(f"envrepo serve: {self.failed}; answering 503", file=sys.stderr, flush=True)
        finally:
            self.finished.set()


SCORER = Scorer()
# What a request is answered with: status, body, content type and headers of its own.
Answer = tuple[int, bytes, bytes, Headers]


def _leave_soon() -> None:
    """A run() past its timeout cannot be stopped inside this process: the worker leaves
    once its answer is out, and uvicorn starts a fresh one."""
    threading.Timer(0.2, lambda: os._exit(3)).start()


def _ran(failed: bool) -> Headers:
    """The header Azure's server says with it whether run() failed."""
    return [(b"x-ms-run-function-failed", b"True" if failed else b"False")]


def _error(status: int, message: str, run_failed: bool = False) -> Answer:
    """An error as Azure's server words it: a JSON body with the message."""
    return status, json.dumps({"message": message}).encode(), JSON, _ran(run_failed)


def _ids(headers: dict[str, str]) -> Headers:
    """The request IDs Azure's server answers with: `x-request-id` (the client's, or a new
    one), `x-ms-request-id` (kept for old clients) and `x-ms-client-request-id`."""
    request_id = headers.get("x-request-id") or str(uuid.uuid4())
    legacy = headers.get("x-ms-request-id", "")
    client = headers.get("x-ms-client-request-id", "")
    if len(request_id) > ID_LIMIT:
        raise Refused(431, f"x-request-id must not exceed {ID_LIMIT} characters")
    if legacy:
        client = client or legacy
    else:
        legacy = client or request_id
    if len(legacy) > ID_LIMIT or len(client) > ID_LIMIT:
        raise Refused(
            431, f"x-ms-request-id and x-ms-client-request-id must not exceed {ID_LIMIT} characters"
        )
    found = [(b"x-request-id", request_id.encode()), (b"x-ms-request-id", legacy.encode())]
    return found + ([(b"x-ms-client-request-id", client.encode())] if client else [])


async def _body(headers: dict[str, str], receive: Any) -> bytes:
    """The request's body, decoded from gzip when it says so, never more than LIMIT bytes."""
    encoding = headers.get("content-encoding", "identity").lower()
    if encoding not in ("identity", "gzip"):
        raise Refused(415, f"Content-Encoding {encoding} is not accepted; send identity or gzip")
    length = headers.get("content-length")
    if length is not None and length.isdigit() and encoding == "identity" and int(length) > LIMIT:
        raise Refused(413, f"the body is over {LIMIT} bytes")
    unpack = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    body = bytearray()
    more = True
    while more:
        try:
            message = await asyncio.wait_for(receive(), READ_TIMEOUT)
        except TimeoutError:
            raise Refused(408, f"the body did not arrive within {READ_TIMEOUT:g} s") from None
        if message["type"] == "http.disconnect":
            raise Refused(400, "the client went away")
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if unpack is not None:
            try:
                chunk = unpack.decompress(chunk, LIMIT + 1 - len(body))
            except zlib.error:
                raise Refused(400, "the body is not valid gzip") from None
        body += chunk
        if len(body) > LIMIT:
            raise Refused(413, f"the body is over {LIMIT} bytes")
    return bytes(body)


async def _score(scope: dict[str, Any], receive: Any, headers: dict[str, str]) -> Answer:
    # A worker still in init() (a fresh one beside a ready one) makes the request wait for it,
    # up to the scoring timeout, rather than answer 503 while the service as a whole is ready.
    deadline = time.monotonic() + SCORING_TIMEOUT
    while not SCORER.finished.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    script = SCORER.script
    if SCORER.failed is not None or script is None:
        return _error(503, SCORER.failed or "init() has not finished yet")
    if scope["method"] == "OPTIONS":
        return 200, b"", b"text/html; charset=utf-8", _ran(False)
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    body = await _body(headers, receive) if scope["method"] == "POST" else b""
    query = scope["query_string"].decode("latin-1")
    request = Request(scope["method"], scope["path"], query, pairs, body)
    arguments = script.arguments(request)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    future = loop.run_in_executor(SCORER.pool, script.call, arguments, request)
    try:
        result = await asyncio.wait_for(asyncio.shield(future), SCORING_TIMEOUT)
    except TimeoutError:
        _leave_soon()
        return _error(504, f"Scoring timeout after {SCORING_TIMEOUT * 1000:g} ms", True)
    except Exception:  # noqa: BLE001 - the entry script's exception is the client's 500
        traceback.print_exc()
        return _error(500, RUN_FAILED, True)
    took = (b"x-ms-run-fn-exec-ms", f"{(time.perf_counter() - started) * 1000:.3f}".encode())
    if isinstance(result, Response):
        return _own(result, took)
    try:
        answer = json.dumps(result).encode()
    except (TypeError, ValueError):
        traceback.print_exc()
        return _error(500, INTERNAL)
    return 200, answer, JSON, [*_ran(False), took]


def _own(response: Response, took: tuple[bytes, bytes]) -> Answer:
    """A response run() made itself (an AMLResponse): as it is, marked when it is a 5xx."""
    headers: Headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in response.headers.items()
        if k.lower() not in ("content-type", "content-length")
    ]
    if response.status_code >= 500:
        headers = [(k, v) for k, v in headers if k != b"x-ms-run-function-failed"] + _ran(True)
    kind = (response.content_type or "text/html; charset=utf-8").encode("latin-1")
    return response.status_code, response.get_data(), kind, [*headers, took]


def _swagger(scope: dict[str, Any]) -> Answer:
    script = SCORER.script
    if script is None:
        return _error(503, SCORER.failed or "init() has not finished yet")
    asked = dict(parse_qsl(scope["query_string"].decode("latin-1"))).get("version")
    return 200, json.dumps(script.swagger(asked, *SERVICE)).encode(), JSON, _ran(False)


def _metrics() -> bytes:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # init() runs beside the server: liveness answers while it works.
                threading.Thread(target=SCORER.start, daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    started = time.perf_counter()
    path, method = scope["path"], scope["method"]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    ids: Headers = []
    try:
        # Azure's server names the request only on its routes, not on a 404 or 405.
        if (path, method) in ROUTES:
            ids = _ids(headers)
        answer = await _route(scope, receive, headers, path, method)
    except Refused as refused:
        answer = _error(refused.status, refused.message)
    status, body, kind, extra = answer
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                *extra,
                *ids,
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
    label = path if path in PATHS else "other"
    REQUESTS.labels(label, str(status), *IDENTITY.values()).inc()
    if status >= 400:
        ERRORS.labels(label, str(status), *IDENTITY.values()).inc()
    LATENCY.labels(label, *IDENTITY.values()).observe(time.perf_counter() - started)


async def _route(
    scope: dict[str, Any], receive: Any, headers: dict[str, str], path: str, method: str
) -> Answer:
    if path == "/score" and method in ("POST", "GET", "OPTIONS"):
        return await _score(scope, receive, headers)
    if path == "/" and method == "GET":
        return 200, b"Healthy", b"text/html; charset=utf-8", []
    if path == "/health/live" and method == "GET":
        return 200, json.dumps({"live": True}).encode(), JSON, []
    if path == "/health/ready" and method == "GET":
        ready = SCORER.ready.is_set() and SCORER.failed is None
        return (
            200 if ready else 503,
            json.dumps({"ready": ready, "error": SCORER.failed}).encode(),
            JSON,
            [],
        )
    if path == "/swagger.json" and method == "GET":
        return _swagger(scope)
    if path == "/metrics" and method == "GET":
        return 200, _metrics(), CONTENT_TYPE_LATEST.encode(), []
    if path in PATHS:
        return _error(405, str(MethodNotAllowed.description))
    return _error(404, str(NotFound.description))
