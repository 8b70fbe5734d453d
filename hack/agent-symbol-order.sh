#!/usr/bin/env bash
# Regenerates cmd/dpcm-agent/symbol-order.txt: the functions dpcm-agent runs, in the order
# the static link lays them out first (lld --symbol-ordering-file; cmd/CMakeLists.txt).
#
# Why: RSS counts every page of the executable the process has touched, and the kernel maps
# file pages 64 KiB around each fault. Spread over 5 MiB of code, the few functions the agent
# runs (its servers, a TLS handshake, health checks and role hooks) touch almost every page;
# packed together they touch a third (README "Memory and the static link" has the figures).
# A list that no longer matches the code is harmless (unknown names are skipped, new
# functions land after the packed ones): rerun this after larger changes to the agent.
#
# How: runs the agent under valgrind's callgrind (every function executed at least once)
# while it follows a domain over TLS and serves health checks, role hooks and long-polls,
# then keeps the executed functions that the binary defines, mangled, in the binary's
# address order.
#
# Usage: hack/agent-symbol-order.sh        Env: BUILD_DIR (default build), DPCM_TESTENV_DIR.
# Needs: valgrind, curl, a built dpcm-agent; starts the local control plane if it is down.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly BUILD_DIR="${BUILD_DIR:-build}"
readonly AGENT="$BUILD_DIR/bin/dpcm-agent"
readonly OUT=cmd/dpcm-agent/symbol-order.txt

log() { printf '[agent-symbol-order] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed"
[ -x "$AGENT" ] || die "$AGENT is not built (cmake --build $BUILD_DIR --target dpcm-agent)"

started=false
if ! hack/testenv.sh status >/dev/null 2>&1; then
  hack/testenv.sh up
  started=true
fi
work="$(mktemp -d)"
agent_pid=""
cleanup() {
  if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; fi
  rm -rf "$work"
  if "$started"; then hack/testenv.sh down; fi
}
trap cleanup EXIT
eval "$(hack/testenv.sh env)"

port=39701
role_port=39702
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" --demangle=no \
  --compress-strings=no --compress-pos=no --dump-instr=no \
  "$AGENT" --domain symbol-order --pod symbol-order-0 --namespace default \
  --bind-address 127.0.0.1 --port "$port" --role-bind-address "127.0.0.1:$role_port" \
  --health-command '{"command":["true"]}' --role-hook-command '{"command":["true"]}' \
  --kubeconfig "$KUBECONFIG" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 120); do
  curl -fs -m 1 "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.5
done
curl -fs -m 5 "http://127.0.0.1:$port/healthz" >/dev/null || die "the agent never answered (log: $work/agent.log)"
log "profiling the agent under load"
for _ in $(seq 20); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null; done
for role in dc:1 pc:2; do
  curl -fs -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$port/dpcm/role" \
    -d "{\"domain\":\"symbol-order\",\"pod\":\"symbol-order-0\",\"role\":\"${role%:*}\",\"epoch\":${role#*:}}" >/dev/null
done
for _ in 1 2 3; do curl -s -m 10 "http://127.0.0.1:$role_port/role?after=1000&wait=2s" >/dev/null & done
curl -fs "http://127.0.0.1:$role_port/role?after=0&wait=1s" >/dev/null
curl -fs "http://127.0.0.1:$role_port/members?after=0&wait=1s" >/dev/null
curl -fs "http://127.0.0.1:$port/members" >/dev/null
curl -s "http://127.0.0.1:$port/role?after=x" >/dev/null  # an error reply
sleep 3  # the long-polls above answer after their 2 s wait
kill -TERM "$agent_pid"
wait "$agent_pid" || true
agent_pid=""

# Executed functions (callgrind's fn= and cfn= names) that the binary defines as code.
grep -E '^c?fn=' "$work/callgrind.out" | sed -E 's/^c?fn=(\([0-9]+\) ?)?//' | sort -u >"$work/executed"
nm -n --defined-only "$AGENT" | awk '$2 ~ /^[tTwW]$/ { print $3 }' >"$work/defined"
awk 'NR == FNR { executed[$0] = 1; next } ($0 in executed) && !seen[$0]++' \
  "$work/executed" "$work/defined" >"$OUT"
log "$(wc -l <"$OUT") functions in $OUT"
