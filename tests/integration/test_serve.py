"""The scoring service on a real engine: the worked example's model, trained with `envrepo
run`, served with `envrepo serve` and scored over HTTP; every bad request gets its own answer,
a run() past its timeout is 504 and its worker replaced, a failing init() is 503 without a
restart loop, and stopping leaves no container."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from registries import free_port
from support import Built, run_envrepo, train_tutorial, write_files

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.9, 5.6, 1.8]]
HOSTILE = """import json, os, pickle, time
model = None
def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"), "rb") as handle:
        model = pickle.load(handle)
def run(raw_data):
    data = json.loads(raw_data)
    if data.get("sleep"):
        time.sleep(data["sleep"])
    if data.get("fail"):
        raise RuntimeError("secret detail")
    return {"predictions": model.predict(data["data"]).tolist()}
"""


@dataclass
class Trained:
    root: Path
    source: Path
    model: Path
    image: str


@pytest.fixture(scope="module")
def trained(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    source, out = train_tutorial(built, tmp_path_factory.mktemp("serve"))
    (source / "hostile.py").write_text(HOSTILE)
    image = str(built.record("envrepo-tutorial")["image"])
    return Trained(built.root, source, out / "model.pkl", image)


def post(
    url: str, body: bytes, kind: str = "application/json", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{url}/score", data=body, method="POST", headers={"Content-Type": kind, **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), dict(error.headers), error.read()


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture
def served(trained: Trained, built: Built) -> Iterator[str]:
    port = free_port()
    done = run_envrepo(
        "serve",
        "envrepo-tutorial",
        "--model",
        trained.model,
        "--entry-script",
        trained.source / "hostile.py",
        "--port",
        str(port),
        "--name",
        "tested",
        "--detach",
        "--scoring-timeout",
        "2",
        "--read-timeout",
        "2",
        "--max-body",
        "100000",
        cwd=trained.root,
        env={"ENVREPO_REGISTRY": built.registry.host},
    )
    assert done.code == 0, done.err[-2000:]
    assert done.out.strip() == f"tested is ready: POST http://127.0.0.1:{port}/score"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopped = run_envrepo("serve", "--stop", "tested", cwd=trained.root)
        assert stopped.code == 0, stopped.err
        assert not [
            c
            for c in docker.from_env().containers.list(all=True)
            if c.name == "envrepo-serve-tested"
        ]


def test_the_service_scores_as_the_model_does_and_names_its_environment(
    served: str, trained: Trained, built: Built
) -> None:
    status, headers, body = post(served, json.dumps({"data": ROWS}).encode())
    assert status == 200, body
    # The same model, loaded in the same environment outside the service.
    expected = docker.from_env().containers.run(
        trained.image,
        [
            "python",
            "-c",
            "import pickle, json, sys; m = pickle.load(open('/m/model.pkl', 'rb'));"
            f" print(json.dumps(m.predict({ROWS!r}).tolist()))",
        ],
        volumes={str(trained.model.parent): {"bind": "/m", "mode": "ro"}},
        remove=True,
        network_disabled=True,
    )
    assert json.loads(body) == {"predictions": json.loads(expected)}
    tutorial = built.record("envrepo-tutorial")
    assert headers["x-envrepo-environment"] == "envrepo-tutorial"
    assert headers["x-envrepo-spec-hash"] == tutorial["hash"]
    assert headers["x-envrepo-image-digest"] == tutorial["digest"]
    assert (
        headers["x-envrepo-model-sha256"] == hashlib.sha256(trained.model.read_bytes()).hexdigest()
    )
    assert get(f"{served}/") == 200 and get(f"{served}/health/live") == 200
    assert get(f"{served}/health/ready") == 200
    # Several requests at once.
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: post(served, json.dumps({"data": ROWS}).encode())[0], range(32))
        )
    assert answers == [200] * 32
    with urllib.request.urlopen(f"{served}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert (
        f'envrepo_requests_total{{environment="envrepo-tutorial",image_digest="{tutorial["digest"]}"'
        in metrics
    )


def test_each_bad_request_gets_its_own_answer(served: str) -> None:
    # As Azure's server: the body goes to run() as text whatever its type says, once it is
    # UTF-8; run() failing on it is the script's 500.
    assert post(served, b'"\xff\xfe"')[0] == 400
    assert post(served, json.dumps({"data": ROWS}).encode(), kind="text/plain")[0] == 200
    status, headers, body = post(served, json.dumps({"fail": True}).encode())
    failed = "An unexpected error occurred in scoring script. Check the logs for more info."
    assert (status, json.loads(body)) == (500, {"message": failed})
    assert headers["x-ms-run-function-failed"] == "True"
    assert b"secret detail" not in body and b"Traceback" not in body
    assert post(served, b"{not json")[0] == 500
    assert post(served, b" " * 200_000)[0] == 413
    bomb = gzip.compress(b'{"data": "' + b"0" * 5_000_000 + b'"}')
    assert len(bomb) < 100_000
    assert post(served, bomb, **{"Content-Encoding": "gzip"})[0] == 413
    assert post(served, json.dumps({"data": ROWS}).encode())[0] == 200
    # A body that does not arrive: 408.
    host, port = served.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as slow:
        slow.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"data"'
        )
        assert slow.recv(100).startswith(b"HTTP/1.1 408")
    # run() past the scoring timeout: 504, and a fresh worker takes over.
    status, _, body = post(served, json.dumps({"sleep": 30}).encode())
    assert status == 504, body
    deadline = time.monotonic() + 30
    while get(f"{served}/health/ready") != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    answers = [post(served, json.dumps({"data": ROWS}).encode())[0] for _ in range(6)]
    assert answers == [200] * 6


def test_a_failing_init_is_503_without_a_restart_loop(trained: Trained, built: Built) -> None:
    write_files(
        trained.source,
        {"broken.py": "def init():\n    raise RuntimeError('no')\n\ndef run(raw):\n    return 1\n"},
    )
    port = free_port()
    done = run_envrepo(
        "serve",
        "envrepo-tutorial",
        "--model",
        trained.model,
        "--entry-script",
        trained.source / "broken.py",
        "--port",
        str(port),
        "--name",
        "broken",
        "--detach",
        cwd=trained.root,
        env={"ENVREPO_REGISTRY": built.registry.host},
    )
    try:
        assert done.code == 1
        assert (
            done.err.strip()
            .splitlines()[-1]
            .startswith("broken: init() failed: RuntimeError; the service answers 503")
        )
        url = f"http://127.0.0.1:{port}"
        time.sleep(3)
        assert get(f"{url}/health/live") == 200
        assert get(f"{url}/health/ready") == 503
        assert post(url, json.dumps({"data": ROWS}).encode())[0] == 503
        found = docker.from_env().containers.get("envrepo-serve-broken")
        assert (found.status, found.attrs["RestartCount"]) == ("running", 0)
    finally:
        assert run_envrepo("serve", "--stop", "broken", cwd=trained.root).code == 0


def test_an_entry_script_outside_its_folder_or_a_linked_model_is_refused(
    trained: Trained, tmp_path: Path
) -> None:
    outside = run_envrepo(
        "serve",
        "envrepo-tutorial",
        "--model",
        trained.model,
        "--entry-script",
        trained.source / "score.py",
        "--source-dir",
        tmp_path,
        cwd=trained.root,
    )
    assert outside.code == 2
    assert "--entry-script: is not a file inside its source folder" in outside.err
    (tmp_path / "model.pkl").symlink_to(trained.model)
    linked = run_envrepo(
        "serve",
        "envrepo-tutorial",
        "--model",
        tmp_path / "model.pkl",
        "--entry-script",
        trained.source / "score.py",
        cwd=trained.root,
    )
    assert linked.code == 2
    assert "--model: is not a file or folder here (links are refused)" in linked.err
