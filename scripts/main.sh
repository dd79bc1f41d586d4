#!/usr/bin/env bash
# Sets everything up, then runs envrepo's main job on this repository's curated environments:
# validate them, print their spec hashes and list them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== envrepo validate"
envrepo validate
echo "== envrepo hash"
envrepo hash
echo "== envrepo list"
envrepo list
