"""Benchmark: the worked example's scoring service (`envrepo serve`, the curated tutorial
environment, a scikit-learn LogisticRegression, one iris row per request) under wrk from a
second process on this machine (`-t2 -c16`, 30 s), side by side in one run with the same
model and score.py served by azureml-inference-server-http (PyPI) in the same environment
image, published the same way, at its default (one worker) and with two workers. Prints
requests/s and p50/p99; asserts nothing (these machines are noisy).

A second pair of rows serves the same model with an entry script whose run() is decorated with
inference_schema (`@input_schema("data", NumpyParameterType(...))`, `@output_schema`), the shape
of Azure's own inference-schema example, on envrepo (2 workers) and on Azure's server (default).

Goals: at least 2x the throughput of azureml-inference-server-http's default at no worse p99,
and ahead of its two-worker setting; the same 2x for the decorated script.

Run: .venv/bin/python benchmarks/serve_tutorial.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import BIN, PROJECT

from envrepo.cli.images import environment
from envrepo.cli.options import State
from envrepo.engine.docker import Docker
from envrepo.serve import image, service
from peers import AZMLINFSRV
from registries import free_port

BODY = '{"data": [[5.1, 3.5, 1.4, 0.2]]}'
DECORATED = """import os, pickle
from pathlib import Path
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema
model = None
def init():
    global model
    model = pickle.loads((Path(os.environ["AZUREML_MODEL_DIR"]) / "model.pkl").read_bytes())
@input_schema("data", NumpyParameterType(np.array([[5.1, 3.5, 1.4, 0.2]])))
@output_schema(StandardPythonParameterType({"predictions": [0]}))
def run(data):
    return {"predictions": model.predict(data).tolist()}
"""
LUA = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"{url}/score", data=BODY.encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer")


def load(url: str, seconds: int, script: Path) -> tuple[float, float, float]:
    """wrk's requests/s and p50/p99 in ms."""
    done = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script), f"{url}/score"],
        capture_output=True,
        text=True,
        check=True,
    )

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", done.stdout, re.M)
        assert found, done.stdout
        return float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise SystemExit(f"{url}: {errors[1]} failed requests:\n{done.stdout}")
    return rate, ms("50%"), ms("99%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    engine = Docker()
    started: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        work = Path(scratch)
        script = work / "post.lua"
        script.write_text(LUA)
        source = work / "source"
        shutil.copytree(PROJECT / "examples/tutorial", source)
        (source / "decorated.py").write_text(DECORATED)
        trained = subprocess.run(
            [
                str(BIN / "envrepo"),
                "run",
                "envrepo-tutorial",
                "--source-dir",
                str(source),
                "--output-dir",
                str(work / "out"),
                "--",
                "python",
                "train.py",
            ],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            check=False,
        )
        if trained.returncode != 0:
            raise SystemExit(trained.stderr[-2000:])
        model = work / "out/model.pkl"
        found = environment(State(PROJECT), "envrepo-tutorial", None, None, engine)
        rows = {}
        try:
            port = free_port()
            ours = subprocess.run(
                [
                    str(BIN / "envrepo"),
                    "serve",
                    "envrepo-tutorial",
                    "--model",
                    str(model),
                    "--entry-script",
                    str(source / "score.py"),
                    "--port",
                    str(port),
                    "--name",
                    "bench",
                    "--detach",
                ],
                cwd=PROJECT,
                capture_output=True,
                text=True,
                check=False,
            )
            if ours.returncode != 0:
                raise SystemExit(ours.stderr[-2000:])
            started.append(service.container("bench"))
            peer = image.build(
                engine,
                found,
                source / "score.py",
                source,
                [image.Model.at(model)],
                lambda _: None,
                AZMLINFSRV,
            )
            ours_image = image.build(
                engine, found, source / "score.py", source, [image.Model.at(model)], lambda _: None
            )
            urls = {"envrepo serve (uvicorn, 2 workers)": f"http://127.0.0.1:{port}"}
            decorated = {"ENVREPO_ENTRY_SCRIPT": f"{image.APP_ROOT}/decorated.py"}
            services = [
                ("azureml-inference-server-http, default", peer.tag, {"ENVREPO_WORKERS": "1"}),
                ("azureml-inference-server-http, 2 workers", peer.tag, {"ENVREPO_WORKERS": "2"}),
                ("envrepo serve, decorated run()", ours_image.tag, decorated),
                (
                    "azureml-inference-server-http, decorated run()",
                    peer.tag,
                    {**decorated, "ENVREPO_WORKERS": "1"},
                ),
            ]
            for number, (label, tag, variables) in enumerate(services):
                name = f"envrepo-bench-peer-{number}"
                peer_port = free_port()
                engine.start_service(tag, name, peer_port, image.PORT, variables)
                started.append(name)
                urls[label] = f"http://127.0.0.1:{peer_port}"
            # Every service up before any is measured: one still starting (importing its
            # packages, running init()) takes the cores from the one under load.
            for url in urls.values():
                ready(url)
            for label, url in urls.items():
                load(url, 3, script)  # warm up
                rows[label] = load(url, args.seconds, script)
        finally:
            for name in started:
                engine.stop_service(name)
    print(
        f"wrk -t2 -c16 -d{args.seconds}s, one iris row per POST /score, LogisticRegression; "
        f"{os.cpu_count()} cores, server and wrk on the same machine"
    )
    print(f"{'server':<44}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, (rate, p50, p99) in rows.items():
        print(f"{label:<44}{rate:>10.0f}{p50:>10.2f}{p99:>10.2f}")
    ours_rate, _, ours_p99 = rows["envrepo serve (uvicorn, 2 workers)"]
    default_rate, _, default_p99 = rows["azureml-inference-server-http, default"]
    two_rate = rows["azureml-inference-server-http, 2 workers"][0]
    print(
        f"vs its default: {ours_rate / default_rate:.2f}x throughput (goal >= 2x: "
        f"{'met' if ours_rate >= 2 * default_rate else 'MISSED'}), p99 {ours_p99:.1f} vs "
        f"{default_p99:.1f} ms ({'met' if ours_p99 <= default_p99 else 'MISSED'}); vs two workers: "
        f"{ours_rate / two_rate:.2f}x ({'met' if ours_rate > two_rate else 'MISSED'})"
    )
    decorated_rate, _, decorated_p99 = rows["envrepo serve, decorated run()"]
    theirs_rate, _, theirs_p99 = rows["azureml-inference-server-http, decorated run()"]
    print(
        f"decorated run(): {decorated_rate / theirs_rate:.2f}x throughput (goal >= 2x: "
        f"{'met' if decorated_rate >= 2 * theirs_rate else 'MISSED'}), p99 {decorated_p99:.1f} "
        f"vs {theirs_p99:.1f} ms ({'met' if decorated_p99 <= theirs_p99 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
