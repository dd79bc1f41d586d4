"""Models as versioned OCI artifacts in a real registry: a run's model registered with its
provenance, the same content twice one version, a download checked byte for byte, and bad
input one line."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from registries import RunningRegistry, free_port, start_registry
from support import Built, run_envrepo, train_tutorial, write_files


@pytest.fixture
def models_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    running = start_registry(tmp_path / "registry")
    try:
        yield running
    finally:
        running.stop()


def model(*args: object, registry: RunningRegistry, cwd: Path) -> tuple[int, str, str]:
    done = run_envrepo("model", *args, "--registry", registry.host, cwd=cwd)
    return done.code, done.out, done.err


def test_a_run_s_model_is_one_version_per_content_with_its_provenance(
    built: Built, tmp_path: Path
) -> None:
    # The session's registry, which holds the tutorial's image too: serve finds both there.
    models_registry = built.registry
    source, out = train_tutorial(built, tmp_path)
    first = model(
        "register", "iris", "--from-run", out, "--json", registry=models_registry, cwd=built.root
    )
    assert first[0] == 0, first[2]
    registered = json.loads(first[1])
    assert (registered["version"], registered["new"]) == (1, True)
    again = model(
        "register", "iris", "--from-run", out, "--json", registry=models_registry, cwd=built.root
    )
    assert json.loads(again[1]) == {**registered, "new": False}
    code, shown, _ = model("show", "iris@1", "--json", registry=models_registry, cwd=built.root)
    assert code == 0
    notes = json.loads(shown)["annotations"]
    record = built.record("envrepo-tutorial")
    assert notes["dev.envrepo.model.environment.hash"] == record["hash"]
    assert notes["dev.envrepo.model.environment.digest"] == record["digest"]
    accuracy = json.loads((out / "metrics.json").read_text())["accuracy"]
    assert json.loads(notes["dev.envrepo.model.metrics"]) == {"accuracy": accuracy}
    assert json.loads(notes["dev.envrepo.model.command"]) == ["python", "train.py"]

    (out / "model.pkl").write_bytes((out / "model.pkl").read_bytes() + b"\0")
    changed = model(
        "register", "iris", "--from-run", out, "--json", registry=models_registry, cwd=built.root
    )
    assert json.loads(changed[1])["version"] == 2
    code, listed, _ = model("list", "iris", "--json", registry=models_registry, cwd=built.root)
    assert json.loads(listed) == {"iris": [1, 2]}
    code, listed, _ = model("list", "--json", registry=models_registry, cwd=built.root)
    assert json.loads(listed)["iris"] == [1, 2]

    target = tmp_path / "downloaded"
    code, said, err = model(
        "download", "iris@1", "-d", target, registry=models_registry, cwd=built.root
    )
    assert (code, said.strip()) == (0, f"iris@1: 2 files in {target}"), err
    assert sorted(p.name for p in target.iterdir()) == ["metrics.json", "model.pkl"]
    assert (target / "model.pkl").read_bytes() == (out / "model.pkl").read_bytes()[:-1]

    # Served by its name and version: the tutorial's score.py finds the run's files where
    # Azure ML puts a registered model's.
    port = free_port()
    served = run_envrepo(
        "serve",
        "envrepo-tutorial",
        "--model",
        "iris@1",
        "--entry-script",
        source / "score.py",
        "--port",
        str(port),
        "--name",
        "registered",
        "--detach",
        "--registry",
        models_registry.host,
        cwd=built.root,
    )
    try:
        assert served.code == 0, served.err[-2000:]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/score",
            data=json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"predictions": [0]}
        # The environment came from the registry as built: nothing was built again here.
        assert built.record("envrepo-tutorial") == record
    finally:
        assert run_envrepo("serve", "--stop", "registered", cwd=built.root).code == 0


def test_a_model_whose_bytes_changed_in_the_registry_is_refused(
    built: Built, models_registry: RunningRegistry, tmp_path: Path
) -> None:
    write_files(tmp_path / "m", {"weights.bin": "w" * 5000})
    code, _, err = model(
        "register",
        "tampered",
        "--path",
        tmp_path / "m",
        "--json",
        registry=models_registry,
        cwd=built.root,
    )
    assert code == 0, err
    code, shown, _ = model("show", "tampered", "--json", registry=models_registry, cwd=built.root)
    manifest = json.loads(shown)
    # The registry's own copy of the model's layer, one byte changed on its disk.
    layers = [
        path
        for path in (models_registry.folder / "data").rglob("data")
        if path.is_file() and path.stat().st_size == manifest["size"]
    ]
    [layer] = layers
    damaged = bytearray(layer.read_bytes())
    damaged[600] ^= 1
    layer.write_bytes(bytes(damaged))
    target = tmp_path / "downloaded"
    code, _, err = model(
        "download", "tampered@1", "-d", target, registry=models_registry, cwd=built.root
    )
    assert code == 2
    assert "do not match their digest" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".downloaded")]


def test_bad_model_input_is_one_line_and_exit_2(
    built: Built, models_registry: RunningRegistry, tmp_path: Path
) -> None:
    write_files(tmp_path, {"m/real.bin": "x", "failed/run.json": json.dumps({"exit_code": 1})})
    (tmp_path / "m/link.bin").symlink_to(tmp_path / "m/real.bin")
    cases = [
        (("register", "Bad_Name", "--path", tmp_path / "m"), "is not a model name"),
        (("register", "linked", "--path", tmp_path / "m"), "is a link; a model holds files"),
        (("register", "nothing", "--path", tmp_path / "absent"), "is not a file or folder here"),
        (("register", "failed", "--from-run", tmp_path / "failed"), "the run did not succeed"),
        (
            ("register", "both", "--path", tmp_path / "m", "--from-run", tmp_path / "m"),
            "give one of",
        ),
        (("show", "never"), "is no model in the registry"),
        (("show", "x@zero"), "write NAME@V"),
        (("download", "never@1", "-d", tmp_path / "d"), "is no model in the registry"),
        (("download", "real", "-d", "/proc/envrepo-nowhere/d"), "-d: cannot be written"),
    ]
    assert (
        model(
            "register",
            "real",
            "--path",
            tmp_path / "m/real.bin",
            registry=models_registry,
            cwd=built.root,
        )[0]
        == 0
    )
    for args, expected in cases:
        code, _, err = model(*args, registry=models_registry, cwd=built.root)
        lines = err.strip().splitlines()
        assert (code, len(lines)) == (2, 1), (args, err)
        assert expected in lines[0], (args, err)


def test_validate_checks_a_deployment_s_model_in_the_registry(
    scratch: Path, models_registry: RunningRegistry, tmp_path: Path
) -> None:
    write_files(tmp_path / "m", {"weights.bin": "w"})
    host = {"ENVREPO_REGISTRY": models_registry.host}
    assert (
        model("register", "iris", "--path", tmp_path / "m", registry=models_registry, cwd=scratch)[
            0
        ]
        == 0
    )
    deployment = (
        "endpoint: iris\ndeployments:\n  blue:\n    environment: envrepo-bookworm\n"
        "    model: iris@{version}\n    code: src\n    scoring_script: score.py\n"
    )
    write_files(
        scratch, {"src/score.py": "def init():\n    pass\n\ndef run(raw):\n    return raw\n"}
    )
    path = scratch / "deployments/iris.yaml"
    write_files(scratch, {"deployments/iris.yaml": deployment.format(version=1)})
    good = run_envrepo("validate", "deployments/iris.yaml", cwd=scratch, env=host)
    assert (good.code, good.out, good.err) == (0, "", "")
    path.write_text(deployment.format(version=2))
    bad = run_envrepo("validate", cwd=scratch, env=host)
    assert bad.code == 1
    assert bad.out.splitlines() == [
        f"deployments/iris.yaml: deployments.blue.model: iris@2 is no model in the registry "
        f"{models_registry.host} (its versions are 1); register it with envrepo model register, "
        "or name a version it has"
    ]
    models_registry.stop()
    offline = run_envrepo("validate", "deployments/iris.yaml", cwd=scratch, env=host)
    assert offline.code == 0, offline.err
    [line] = offline.out.splitlines()
    assert line.startswith(
        "deployments/iris.yaml: deployments.blue.model: warning: iris@2 could not be checked: registry "
    )
