#!/usr/bin/env bash
# The CI fuzz step: builds every fuzz target and fuzzes each for FUZZ_SECONDS (default 30),
# starting from the committed seeds. Exits non-zero on any finding, and when the canary does not
# find its planted bug (a broken fuzz setup must not pass silently). Findings are reported, not
# copied into Fuzz/FailCases/ (CI does not change the checkout); reproduce them locally with
# Fuzz/run.sh TARGET. Takes about 3–4 minutes: ~1.5 minutes of builds and 30 s per target.
#
#   bash Fuzz/ci.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_KEEP_FAILCASES=0
started=$(date +%s)
Fuzz/run.sh build all
Fuzz/run.sh all "${FUZZ_SECONDS:-30}"
echo "== fuzz step passed in $(($(date +%s) - started)) s"
