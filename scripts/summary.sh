#!/usr/bin/env bash
# The pull request's job summary ($GITHUB_STEP_SUMMARY, else standard output):
#   scripts/summary.sh plan      what would be built, in waves
#   scripts/summary.sh changes   each build's package changes against the published index
set -euo pipefail
cd "$(dirname "$0")/.."
out="${GITHUB_STEP_SUMMARY:-/dev/stdout}"
index=()
[[ -n "${ENVREPO_INDEX_URL:-}" ]] && index=(--index "$ENVREPO_INDEX_URL")
case "${1:-}" in
    plan)
        # What cannot be built, and why, goes into the summary too; then the step fails.
        status=0
        {
            echo "### envrepo plan"
            echo
            echo '```'
            .venv/bin/envrepo plan 2>&1 || status=$?
            echo '```'
        } >>"$out"
        exit "$status"
        ;;
    changes)
        .venv/bin/envrepo diff --builds --markdown "${index[@]}" >>"$out"
        ;;
    *)
        echo "usage: scripts/summary.sh plan|changes" >&2
        exit 2
        ;;
esac
