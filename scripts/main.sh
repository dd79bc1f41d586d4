#!/usr/bin/env bash
# Sets everything up, then runs envrepo's main job on this repository's curated environments:
# bring up Docker and the local registry, validate and check the locks, build what is not in
# the registry yet (from the Debian archive up), push it with its tags, publish the index
# (versions, SBOMs, package diffs, HTML pages) into a folder, and say where to open it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== envrepo validate"
envrepo validate
echo "== envrepo lock --check"
envrepo lock --check
echo "== envrepo plan"
envrepo plan
echo "== envrepo build --push"
envrepo build --push
echo "== envrepo publish"
envrepo publish
echo "== envrepo list --index index"
envrepo list --index index
