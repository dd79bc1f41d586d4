#!/usr/bin/env bash
# The pin-check action's one step: envrepo from this action's own checkout, then
# `envrepo pin --check --json`, reported as annotations and a job summary table.
set -euo pipefail
here="$(cd "$(dirname "$0")/../../.." && pwd)"
if [[ ! -x "$here/.venv/bin/envrepo" ]]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here"
fi
cd "${ENVREPO_WORKDIR:-.}"
strict=()
[[ "${ENVREPO_STRICT:-false}" == "true" ]] && strict=(--strict)
code=0
"$here/.venv/bin/envrepo" pin --check --json "${strict[@]}" >pin-check.json || code=$?
"$here/.venv/bin/python" "$here/.github/actions/pin-check/report.py" pin-check.json
rm -f pin-check.json
exit "$code"
