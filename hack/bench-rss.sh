#!/usr/bin/env bash
# RSS benchmark (issues 11 and 12): dpcm-operator idle, dpcm-agent under a health-check /
# role-hook / long-poll load, and the agent with pkg/client after one TLS request; VmRSS,
# RssAnon, RssFile and threads of each. Not a test: figures only.
#
# Usage: hack/bench-rss.sh
# Env: BUILD_DIR (default build), DPCM_BUILD_JOBS (default nproc), DPCM_TESTENV_DIR.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly BUILD_DIR="${BUILD_DIR:-build}"

hack/deps.sh
hack/static-sources.sh
hack/testenv.sh build
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"${DPCM_BUILD_JOBS:-$(nproc)}" --target dpcm-bench-rss

started=false
if ! hack/testenv.sh status >/dev/null 2>&1; then
  hack/testenv.sh up
  started=true
fi
cleanup() { if "$started"; then hack/testenv.sh down; fi; }
trap cleanup EXIT

"$BUILD_DIR/bin/dpcm-bench-rss"
