"""The scoring app, as it runs inside an inference image under uvicorn: Azure ML's contract
(the entry script's `init()` once per worker, `run(raw_data)` per request on `POST /score`),
stricter than azureml-inference-server-http. This file is copied into the image and imports
only the standard library, uvicorn's ASGI interface and prometheus_client; nothing of envrepo.

- 415 for a body that is not JSON by its content type; 400 for bytes that are not UTF-8 JSON
- 413 for a body over the limit, from its Content-Length or while it is read (a gzip body is
  counted after decoding), without reading it all; 408 for a body that does not arrive
- 500 for an exception in `run()`, with no traceback in the response; 504 when `run()` passes
  the scoring timeout, and the worker then leaves so that uvicorn replaces it
- `/health/live` and `GET /` answer while the worker is up; `/health/ready` and `/score` answer
  503 until `init()` passed, and for good when it failed (never a restart loop)
- every response names the environment, its spec hash, image digest and the model's sha256;
  `/metrics` serves Prometheus metrics with the same labels
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

ENTRY = os.environ["ENVREPO_ENTRY_SCRIPT"]
LIMIT = int(os.environ.get("ENVREPO_MAX_BODY", str(1 << 20)))
SCORING_TIMEOUT = float(os.environ.get("ENVREPO_SCORING_TIMEOUT", "60"))
READ_TIMEOUT = float(os.environ.get("ENVREPO_READ_TIMEOUT", "10"))
IDENTITY = {
    "environment": os.environ.get("ENVREPO_ENVIRONMENT", ""),
    "spec_hash": os.environ.get("ENVREPO_SPEC_HASH", ""),
    "image_digest": os.environ.get("ENVREPO_IMAGE_DIGEST", ""),
    "model_sha256": os.environ.get("ENVREPO_MODEL_SHA256", ""),
}
HEADERS = [
    (b"x-envrepo-environment", IDENTITY["environment"].encode()),
    (b"x-envrepo-spec-hash", IDENTITY["spec_hash"].encode()),
    (b"x-envrepo-image-digest", IDENTITY["image_digest"].encode()),
    (b"x-envrepo-model-sha256", IDENTITY["model_sha256"].encode()),
]
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
        self.module: Any = None
        self.failed: str | None = None
        self.ready = threading.Event()
        self.finished = threading.Event()  # init() returned or raised
        self.pool = ThreadPoolExecutor(max_workers=int(os.environ.get("ENVREPO_THREADS", "4")))

    def start(self) -> None:
        try:
            spec = importlib.util.spec_from_file_location("score", ENTRY)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.path.insert(0, str(Path(ENTRY).parent))
            spec.loader.exec_module(module)
            module.init()
            self.module = module
            self.ready.set()
            print("envrepo serve: init() passed; ready", file=sys.stderr, flush=True)
        except BaseException as error:  # noqa: BLE001 - a failed init() is a state, not a crash
            self.failed = f"init() failed: {type(error).__name__}"
            traceback.print_exc()
            print(f"envrepo serve: {self.failed}; answering 503", file=sys.stderr, flush=True)
        finally:
            self.finished.set()


SCORER = Scorer()


def _leave_soon() -> None:
    """A run() past its timeout cannot be stopped inside this process: the worker leaves
    once its answer is out, and uvicorn starts a fresh one."""
    threading.Timer(0.2, lambda: os._exit(3)).start()


async def _send(send: Any, status: int, body: bytes, kind: bytes = b"application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _body(scope: dict[str, Any], receive: Any) -> bytes:
    """The request's body, decoded from gzip when it says so, never more than LIMIT bytes."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refused(415, "send JSON with Content-Type: application/json")
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


async def _score(scope: dict[str, Any], receive: Any) -> tuple[int, bytes]:
    # A worker still in init() (a fresh one beside a ready one) makes the request wait for it,
    # up to the scoring timeout, rather than answer 503 while the service as a whole is ready.
    deadline = time.monotonic() + SCORING_TIMEOUT
    while not SCORER.finished.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    if SCORER.failed is not None or not SCORER.ready.is_set():
        return 503, _error(SCORER.failed or "init() has not finished yet")
    raw = await _body(scope, receive)
    try:
        text = raw.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the body is not UTF-8 JSON") from None
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(SCORER.pool, SCORER.module.run, text)
    try:
        result = await asyncio.wait_for(asyncio.shield(future), SCORING_TIMEOUT)
    except TimeoutError:
        _leave_soon()
        return 504, _error(f"run() took longer than {SCORING_TIMEOUT:g} s")
    except Exception as error:  # noqa: BLE001 - the entry script's exception is the client's 500
        traceback.print_exc()
        return 500, _error(f"run() raised {type(error).__name__}")
    try:
        return 200, json.dumps(result).encode()
    except (TypeError, ValueError):
        return 500, _error("run() returned something that is not JSON")


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
    kind = b"application/json"
    try:
        if path == "/score" and method == "POST":
            status, body = await _score(scope, receive)
        elif path in ("/", "/health/live") and method == "GET":
            status, body = 200, b"Healthy" if path == "/" else json.dumps({"live": True}).encode()
            kind = b"text/plain" if path == "/" else kind
        elif path == "/health/ready" and method == "GET":
            ready = SCORER.ready.is_set() and SCORER.failed is None
            status = 200 if ready else 503
            body = json.dumps({"ready": ready, "error": SCORER.failed}).encode()
        elif path == "/metrics" and method == "GET":
            status, body, kind = 200, _metrics(), CONTENT_TYPE_LATEST.encode()
        elif path in ("/score", "/", "/health/live", "/health/ready", "/metrics"):
            status, body = 405, _error(f"{method} is not accepted on {path}")
        else:
            status, body = 404, _error(f"{path} is not a path of this service")
    except Refused as refused:
        status, body = refused.status, _error(refused.message)
    await _send(send, status, body, kind)
    label = (
        path if path in ("/score", "/", "/health/live", "/health/ready", "/metrics") else "other"
    )
    REQUESTS.labels(label, str(status), *IDENTITY.values()).inc()
    if status >= 400:
        ERRORS.labels(label, str(status), *IDENTITY.values()).inc()
    LATENCY.labels(label, *IDENTITY.values()).observe(time.perf_counter() - started)
