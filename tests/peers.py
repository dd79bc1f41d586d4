"""The tools a user would otherwise pick, as the tests and benchmarks run them beside envrepo."""

from __future__ import annotations

from envrepo.serve import image

AZMLINFSRV_VERSION = "1.5.1"
# azureml-inference-server-http, started as its own `azmlinfsrv` command starts it, on the
# entry script and models the inference image names (ENVREPO_ENTRY_SCRIPT may be changed when
# a container starts, to serve another script of the same image).
AZMLINFSRV = image.Server(
    (f"azureml-inference-server-http=={AZMLINFSRV_VERSION}",),
    "exec /opt/env/bin/python -c 'import sys; from azureml_inference_server_http.amlserver "
    'import run; sys.argv[0] = "azmlinfsrv"; sys.exit(run())\' --entry_script '
    '"$ENVREPO_ENTRY_SCRIPT" --model_dir "$AZUREML_MODEL_DIR" --port {port} '
    "--worker_count ${{ENVREPO_WORKERS:-1}}",
)
