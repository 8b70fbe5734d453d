#!/usr/bin/env bash
# Scale benchmark (issue 12): D domains x R sleeping pods beside B unrelated pods, with
# client-go's workqueue example (an informer over every pod) as the memory anchor.
# Prints convergence time and request rate vs the QPS limit, how long the operator took to
# go quiet after it, RSS and threads at six points, steady-state requests per domain per
# minute, and failover p50/p99 idle, while the other domains converge (the rate limit in
# full use) and with all of them present (with the operator's own part from
# status.lastFailover), for the default --kube-api-qps and a raised one. Not a test:
# figures only. Refuses to run beside the domains of a run that was killed.
#
# Usage: hack/bench-scale.sh [--domains 1000] [--replicas 3] [--unrelated 5000]
#          [--qps 20] [--raised-qps 200 (0: one pass only)] [--steady 600] [--trials 20]
#          [--failover-timeout 30] [--converge-timeout 3600] [--ip-base 127.20.0.0]
# Small: hack/bench-scale.sh --domains 100 --unrelated 500 --steady 60
# Env: BUILD_DIR (default build), DPCM_BUILD_JOBS (default nproc), DPCM_TESTENV_DIR,
#      DPCM_SCALE_OPERATOR_ENV ("NAME=value ..." for the operator only, e.g. to profile it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly BUILD_DIR="${BUILD_DIR:-build}"
readonly CACHE="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}"
readonly GO_INFORMER_BIN="$CACHE/bin/client-go-workqueue-example"

log() { printf '[bench-scale] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# client-go's workqueue example (a pod informer + work queue), built from the same Debian
# kubernetes tree as kube-apiserver, the way hack/testenv.sh builds the leader-election
# peer. The example watches namespace "default"; it is patched to watch every namespace.
build_go_informer() {
  if [ -x "$GO_INFORMER_BIN" ]; then return; fi
  local tree
  tree="$(find "$CACHE/src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' 2>/dev/null | head -n1)"
  if [ -z "$tree" ]; then
    hack/testenv.sh build-peer # fetches, unpacks and patches the tree
    tree="$(find "$CACHE/src" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)"
  fi
  local example="$tree/staging/src/k8s.io/client-go/examples/workqueue/main.go"
  sed -i 's/"pods", v1.NamespaceDefault, fields.Everything()/"pods", v1.NamespaceAll, fields.Everything()/' "$example"
  grep -q '"pods", v1.NamespaceAll, fields.Everything()' "$example" || die "could not make the example watch all namespaces"
  log "building client-go's workqueue example (an informer over all pods)"
  mkdir -p "$CACHE/home" "$CACHE/bin"
  local logfile="$CACHE/build-workqueue.log"
  (
    cd "$tree"
    GOPATH="$tree/.go" CGO_ENABLED=0 HOME="$CACHE/home" GOFLAGS=-mod=vendor \
      make WHAT=vendor/k8s.io/client-go/examples/workqueue >"$logfile" 2>&1
  ) || { tail -n 30 "$logfile" >&2; die "build of the workqueue example failed (log: $logfile)"; }
  install -m 0755 "$tree/_output/bin/workqueue" "$GO_INFORMER_BIN"
}

hack/deps.sh
hack/testenv.sh build
build_go_informer
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"${DPCM_BUILD_JOBS:-$(nproc)}" --target dpcm-bench-scale

started=false
if ! hack/testenv.sh status; then
  hack/testenv.sh up
  started=true
fi
cleanup() { if "$started"; then hack/testenv.sh down; fi; }
trap cleanup EXIT

"$BUILD_DIR/bin/dpcm-bench-scale" --go-informer "$GO_INFORMER_BIN" "$@"
