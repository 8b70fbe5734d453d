#!/usr/bin/env bash
# Failover benchmark: dpcm (DC process SIGKILLed, DC pod deleted) side by side with
# client-go's leader election (15/10/2 s, leader SIGKILLed), on the local control plane.
# Prints p50/p90/p99 of kill -> new active as seen by an independent watch.
#
# Usage: hack/bench-failover.sh [--trials N (default 20)] [--peer-trials N (default 5)]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly BUILD_DIR="${BUILD_DIR:-build}"
readonly CACHE="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}"

hack/deps.sh
hack/testenv.sh build
hack/testenv.sh build-peer
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target dpcm-bench-failover

started=false
if ! hack/testenv.sh status; then
  hack/testenv.sh up
  started=true
fi
cleanup() { if "$started"; then hack/testenv.sh down; fi; }
trap cleanup EXIT

"$BUILD_DIR/bin/dpcm-bench-failover" --peer-binary "$CACHE/bin/leader-election-example" "$@"
