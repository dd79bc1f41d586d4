"""Azure ML's raw HTTP interface for entry scripts, as `azureml.contrib.services.aml_request`
and `aml_response` offer it: `@rawhttp` on run() hands it the request itself, and run() may
answer with an `AMLResponse` of its own (bytes, a status, headers). Both are werkzeug's (the
library Flask's own request and response are made of), so a script written for Azure's
Flask-based server finds the same attributes. Copied into the inference image beside app.py,
and installed under Azure's module names before the entry script is loaded."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from werkzeug.wrappers import Request, Response

F = TypeVar("F", bound=Callable[..., Any])
# Set when the entry script decorates its run(): the server then hands run() the request.
RAW_HTTP = {"requested": False}


def rawhttp(function: F) -> F:
    RAW_HTTP["requested"] = True
    return function


class AMLRequest(Request):
    """The request, as `run(request)` under `@rawhttp` receives it."""


class AMLResponse(Response):
    """What run() may return to answer as it likes; `json_str` serialises `message` as JSON."""

    # Flask's, which Azure's server answers with, rather than werkzeug's text/plain.
    default_mimetype = "text/html"

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        headers = dict(response_headers or {})
        if message is None:
            super().__init__(json.dumps({}), status=status_code, mimetype="application/json")
        elif json_str:
            super().__init__(json.dumps(message), status=status_code, mimetype="application/json")
        else:
            super().__init__(message, status=status_code)
            if any(key.lower() == "content-type" for key in headers):
                del self.headers["Content-Type"]
        self.headers["x-ms-run-function-failed"] = str(run_function_failed)
        # Repeated headers come comma-separated, as Azure's server splits them.
        for header, value in headers.items():
            for part in value.split(","):
                self.headers.add(header, part.strip())
