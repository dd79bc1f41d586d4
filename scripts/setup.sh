#!/usr/bin/env bash
# Installs what envrepo needs on a fresh Debian 12 machine (run as root) and the project into
# .venv. Safe to run again: it installs only what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/apt-packages.sh
source scripts/apt-packages.sh
# wrk: the load the serving benchmark puts on both servers.
ensure_packages setup git python3 python3-venv ca-certificates wrk

# Debian's interpreter, not whatever python3 is first on PATH, so that every machine builds
# the same .venv.
stamp=.venv/.installed-from
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "setup: installing envrepo and its tools into .venv" >&2
    /usr/bin/python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2> >(grep -v "^WARNING: Location" >&2)
    echo "$wanted" >"$stamp"
fi
echo "setup: ready ($(.venv/bin/envrepo --version))" >&2
