#!/usr/bin/env bash
# Sets everything up, then runs every check: the pre-commit hooks (ruff, mypy, the linters of
# the CI workflows and shell scripts, envrepo's own validate and lock checks on this
# repository) and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
# What only the tests use: Chromium renders the HTML index; node and npm run Renovate's own
# schema on the index's documents (a node that is there already is used as it is).
# shellcheck source=scripts/apt-packages.sh
source scripts/apt-packages.sh
ensure_packages test chromium
command -v npm >/dev/null || ensure_packages test nodejs npm
export PATH="$PWD/.venv/bin:$PATH"

echo "== pre-commit hooks (ruff, mypy, actionlint, shellcheck, envrepo validate, envrepo lock --check)"
pre-commit run --all-files --show-diff-on-failure

echo "== tests"
pytest "$@"
