"""A scoring service's life: started from its inference image on a loopback port, waited for
until its readiness says init() passed (or failed: the service then answers 503 and stays,
no restart loop), followed or left in the background, and stopped by name."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from envrepo.errors import EnvrepoError
from envrepo.serve.image import PORT

PREFIX = "envrepo-serve-"
READY_WITHIN = 180.0


def container(name: str) -> str:
    return f"{PREFIX}{name}"


@dataclass(frozen=True)
class Started:
    url: str
    ready: bool
    error: str | None


def _readiness(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"{url}/health/ready", timeout=5) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return int(error.code), json.loads(error.read())
        except ValueError:
            return int(error.code), {}
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class Limits:
    """What a request may take: body bytes, seconds for the body to arrive, seconds in run()."""

    max_body: int = 1 << 20
    read_timeout: float = 10.0
    scoring_timeout: float = 60.0
    workers: int = 2

    def environment(self) -> dict[str, str]:
        return {
            "ENVREPO_MAX_BODY": str(self.max_body),
            "ENVREPO_READ_TIMEOUT": str(self.read_timeout),
            "ENVREPO_SCORING_TIMEOUT": str(self.scoring_timeout),
            "ENVREPO_WORKERS": str(self.workers),
        }


def start(engine: Any, image: str, name: str, port: int, limits: Limits) -> Started:
    """The service running and answering: ready, or its init() failed (then it answers 503)."""
    engine.start_service(image, container(name), port, PORT, limits.environment())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        state = engine.service_state(container(name))
        if state is None or state[0] in ("exited", "dead"):
            last = state[2].strip().splitlines()[-1] if state and state[2].strip() else "no output"
            engine.stop_service(container(name))
            raise EnvrepoError(f"the service {name} stopped as it started: {last}")
        answer = _readiness(url)
        if answer is not None:
            status, body = answer
            if status == 200:
                return Started(url, True, None)
            if body.get("error"):
                return Started(url, False, str(body["error"]))
        time.sleep(0.25)
    engine.stop_service(container(name))
    raise EnvrepoError(f"the service {name} was not ready within {READY_WITHIN:g} s; it is stopped")


def stop(engine: Any, name: str) -> bool:
    return bool(engine.stop_service(container(name)))
