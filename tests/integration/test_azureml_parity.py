"""Azure ML's entry scripts, served unchanged: each request goes to `envrepo serve`'s app and to
azureml-inference-server-http (`azmlinfsrv`, PyPI) running the same script and model on the same
environment image, and the answers are compared: status, content type, body and the headers a
client reads. Where envrepo answers otherwise on purpose, the case says so and why.

The entry scripts are written for these tests in the shapes Azure's examples use: an undecorated
`run(raw_data)` (online endpoints' model-1), `inference_schema` decorators with numpy, pandas and
standard parameter types (managed/inference-schema), `@rawhttp` with `AMLRequest` /
`AMLResponse` (managed/binary-payloads), and `run(data, request_headers)`."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest

from envrepo.engine.docker import Docker
from envrepo.run import Environment
from envrepo.serve import image
from peers import AZMLINFSRV
from registries import free_port
from support import Built, write_files

WEIGHTS = {"w": [0.5, -1.0, 2.0, 0.25], "b": 0.125}
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
LOAD = """import json, os
def weights():
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights", "weights.json")) as f:
        return json.load(f)
"""
SCRIPTS = {
    "plain.py": LOAD
    + """import time
W = None
def init():
    global W
    W = weights()
def run(raw_data):
    data = json.loads(raw_data)
    time.sleep(data.get("sleep", 0))
    rows = data["data"]
    return {"predictions": [sum(w * x for w, x in zip(W["w"], r)) + W["b"] for r in rows]}
""",
    "numpy_schema.py": LOAD
    + """import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema
W = B = None
def init():
    global W, B
    found = weights()
    W, B = np.array(found["w"]), found["b"]
@input_schema("data", NumpyParameterType(np.array([[5.1, 3.5, 1.4, 0.2]])))
@input_schema("GlobalParameters", StandardPythonParameterType({"scale": 1.0}))
@output_schema(StandardPythonParameterType({"predictions": [1.0]}))
def run(data, GlobalParameters={"scale": 1.0}):
    return {"predictions": ((data @ W + B) * GlobalParameters["scale"]).tolist()}
""",
    "pandas_schema.py": LOAD
    + """import numpy as np
import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema
W = None
def init():
    global W
    W = weights()
SAMPLE = pd.DataFrame({"a": [5.1], "b": [3.5], "c": [1.4], "d": [0.2]})
@input_schema("input_data", PandasParameterType(SAMPLE))
@output_schema(StandardPythonParameterType([1.0]))
def run(input_data):
    return (input_data[["a", "b", "c", "d"]].to_numpy() @ np.array(W["w"]) + W["b"]).tolist()
""",
    "raw.py": """from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
def init():
    pass
@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse("send the bytes with POST", 400)
    if request.args.get("teapot"):
        return AMLResponse({"teapot": True}, 418, json_str=True)
    if request.args.get("broken"):
        return AMLResponse("broken on purpose", 503)
    if request.files:
        return {name: len(part.read()) for name, part in request.files.items()}
    body = request.get_data(cache=False)
    headers = {"Content-Type": "application/octet-stream", "X-Length": str(len(body))}
    return AMLResponse(bytes(reversed(body)), 200, headers)
""",
    "headers.py": """import json
def init():
    pass
def run(data, request_headers):
    return {"data": json.loads(data), "custom": request_headers.get("X-Custom")}
""",
}
JSON = "application/json"
MULTIPART = "multipart/form-data; boundary=XyZ"
UPLOAD = (
    b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
    b"Content-Type: image/png\r\n\r\n" + bytes(range(256)) * 4 + b"\r\n--XyZ--\r\n"
)


@dataclass(frozen=True)
class Case:
    """One request, and why envrepo's answer may differ from azmlinfsrv's (None: it may not)."""

    script: str
    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": JSON})
    differs: str | None = None
    ours: int | None = None  # envrepo's status where it differs on purpose


def body(value: object) -> bytes:
    return json.dumps(value).encode()


CASES = [
    Case("plain.py", "POST", "/score", body({"data": ROWS})),
    Case("plain.py", "POST", "/score", body({"data": ROWS}), {}),
    Case("plain.py", "POST", "/score", body({"data": ROWS}), {"Content-Type": "text/plain"}),
    Case("plain.py", "GET", f"/score?data={json.dumps(ROWS).replace(' ', '')}", headers={}),
    Case("plain.py", "POST", "/score", b'"\xff\xfe"'),
    Case("plain.py", "POST", "/score", body({"rows": ROWS})),
    Case("plain.py", "POST", "/score", b"{not json"),
    Case("plain.py", "POST", "/score", body({"data": ROWS, "pad": "x" * (2 << 20)})),
    Case("plain.py", "POST", "/score", body({"data": ROWS}), {"x-request-id": "req-1"}),
    Case("plain.py", "POST", "/score", body({"data": ROWS}), {"x-ms-client-request-id": "c-1"}),
    Case("plain.py", "POST", "/score", body({"data": ROWS}), {"x-request-id": "r" * 101}),
    Case("plain.py", "OPTIONS", "/score", headers={}),
    Case("plain.py", "PUT", "/score", body({"data": ROWS})),
    Case("plain.py", "GET", "/", headers={}),
    Case("plain.py", "GET", "/nowhere", headers={}),
    Case("plain.py", "GET", "/swagger.json", headers={}),
    Case("plain.py", "GET", "/swagger.json?version=3", headers={}),
    Case("plain.py", "GET", "/swagger.json?version=5", headers={}),
    Case(
        "plain.py",
        "POST",
        "/score",
        body({"data": ROWS, "sleep": 10}),
        differs="504 Gateway Timeout is what a timeout is; Azure's server says 500 (same message)",
        ours=504,
    ),
    Case("numpy_schema.py", "POST", "/score", body({"data": ROWS})),
    Case(
        "numpy_schema.py",
        "POST",
        "/score",
        body({"data": ROWS, "GlobalParameters": {"scale": 2.0}}),
    ),
    Case("numpy_schema.py", "POST", "/score", body({"rows": ROWS})),
    Case("numpy_schema.py", "POST", "/score", body({"data": "not an array"})),
    Case("numpy_schema.py", "POST", "/score", body([ROWS])),
    Case("numpy_schema.py", "POST", "/score", b""),
    Case("numpy_schema.py", "POST", "/score", b"{not json"),
    Case("numpy_schema.py", "POST", "/score", body({"data": ROWS}), {"Content-Type": "text/plain"}),
    Case(
        "numpy_schema.py",
        "POST",
        "/score",
        body({"data": ROWS}),
        {"Content-Type": "application/vnd.x+json"},
    ),
    Case("numpy_schema.py", "GET", f"/score?data={json.dumps(ROWS).replace(' ', '')}", headers={}),
    Case("numpy_schema.py", "GET", "/swagger.json", headers={}),
    Case("numpy_schema.py", "GET", "/swagger.json?version=3", headers={}),
    Case("numpy_schema.py", "GET", "/swagger.json?version=3.1", headers={}),
    Case(
        "pandas_schema.py",
        "POST",
        "/score",
        body({"input_data": [dict(zip("abcd", r, strict=True)) for r in ROWS]}),
    ),
    Case("pandas_schema.py", "POST", "/score", body({"input_data": {"a": "x"}})),
    Case("pandas_schema.py", "GET", "/swagger.json", headers={}),
    Case("pandas_schema.py", "GET", "/swagger.json?version=3", headers={}),
    Case(
        "raw.py", "POST", "/score", bytes(range(256)), {"Content-Type": "application/octet-stream"}
    ),
    Case("raw.py", "POST", "/score", UPLOAD, {"Content-Type": MULTIPART}),
    Case("raw.py", "GET", "/score", headers={}),
    Case("raw.py", "POST", "/score?teapot=1", b"x", {}),
    Case("raw.py", "POST", "/score?broken=1", b"x", {}),
    Case(
        "headers.py", "POST", "/score", body({"data": 1}), {"Content-Type": JSON, "X-Custom": "yes"}
    ),
]
# What a client reads of an answer besides its body.
COMPARED = ("x-ms-run-function-failed", "x-request-id", "x-ms-request-id", "x-ms-client-request-id")


@dataclass(frozen=True)
class Answer:
    status: int
    kind: str
    body: object
    headers: Mapping[str, str]


def ask(url: str, case: Case) -> Answer:
    """`case`'s request as it is: http.client adds no Content-Type of its own (urllib would)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        sent = case.body if case.method in ("POST", "PUT") else None
        connection.request(case.method, case.path, body=sent, headers=dict(case.headers))
        response = connection.getresponse()
        status, headers, raw = response.status, response.headers, response.read()
    finally:
        connection.close()
    kind = (headers.get("Content-Type") or "").split(";")[0].strip()
    found: object = raw
    if kind == JSON:
        found = json.loads(raw)
    seen = {name: headers[name] for name in COMPARED if headers.get(name) is not None}
    if "x-request-id" not in case.headers:
        # A fresh ID on both sides; that there is one is what counts.
        seen = {k: "(new)" if v == headers.get("x-request-id") else v for k, v in seen.items()}
    return Answer(status, kind, found, seen)


@dataclass
class Servers:
    images: dict[str, str]
    running: dict[tuple[str, str], str] = field(default_factory=dict)

    def url(self, server: str, script: str) -> str:
        """The address of `server` serving `script`, started on first use."""
        key = (server, script)
        if key not in self.running:
            port = free_port()
            entry = f"{image.APP_ROOT}/{script}"
            variables = {
                "ENVREPO_ENTRY_SCRIPT": entry,
                "AZUREML_ENTRY_SCRIPT": script,
                "ENVREPO_WORKERS": "1",
                "ENVREPO_SCORING_TIMEOUT": "3",
                "SCORING_TIMEOUT_MS": "3000",
            }
            docker.from_env().containers.run(
                self.images[server],
                detach=True,
                name=f"envrepo-parity-{server}-{script.removesuffix('.py')}",
                environment=variables,
                ports={f"{image.PORT}/tcp": ("127.0.0.1", port)},
                labels={"dev.envrepo.test": "parity"},
            )
            self.running[key] = f"http://127.0.0.1:{port}"
            ready(self.running[key], "/health/ready" if server == "envrepo" else "/")
        return self.running[key]


def ready(url: str, path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + path, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture(scope="module")
def servers(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("parity")
    write_files(base / "source", SCRIPTS)
    write_files(base / "weights", {"weights.json": json.dumps(WEIGHTS)})
    record = built.record("envrepo-tutorial")
    environment = Environment(
        "envrepo-tutorial", None, str(record["hash"]), str(record["image"]), str(record["digest"])
    )
    engine = Docker()
    images = {
        server: image.build(
            engine,
            environment,
            base / "source/plain.py",
            base / "source",
            [image.Model.at(base / "weights")],
            lambda _: None,
            kind,
        ).tag
        for server, kind in (("envrepo", image.UVICORN), ("azmlinfsrv", AZMLINFSRV))
    }
    found = Servers(images)
    try:
        yield found
    finally:
        client = docker.from_env()
        for container in client.containers.list(
            all=True, filters={"label": "dev.envrepo.test=parity"}
        ):
            container.remove(force=True)
        for tag in images.values():
            client.images.remove(tag, force=True)


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c.script}-{c.method}-{c.path[:40]}-{len(c.body)}"
)
def test_envrepo_answers_as_azure_ml_s_own_server_does(servers: Servers, case: Case) -> None:
    theirs = ask(servers.url("azmlinfsrv", case.script), case)
    ours = ask(servers.url("envrepo", case.script), case)
    if case.differs is None:
        assert ours == theirs
    else:
        assert ours.status == case.ours, (case.differs, ours)
        assert (ours.kind, ours.body) == (theirs.kind, theirs.body), case.differs


def test_azure_ml_s_model_layout_for_a_file_a_folder_a_registered_model_and_several(
    tmp_path: Path,
) -> None:
    write_files(tmp_path, {"model.pkl": "m", "bundle/a.bin": "a", "other.onnx": "o"})
    root = image.MODELS_ROOT
    file, folder = image.Model.at(tmp_path / "model.pkl"), image.Model.at(tmp_path / "bundle")
    registered = image.Model(tmp_path / "bundle", "iris", 3, as_they_are=True)
    assert (file.place, image.model_layout([file])) == ("model/1/model.pkl", f"{root}/model/1")
    assert (folder.place, image.model_layout([folder])) == ("bundle/1/bundle", f"{root}/bundle/1")
    assert (registered.place, image.model_layout([registered])) == ("iris/3", f"{root}/iris/3")
    assert image.model_layout([file, image.Model.at(tmp_path / "other.onnx")]) == root
