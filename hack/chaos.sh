#!/usr/bin/env bash
# Faults for the local test world, one verb at a time, each logged with a timestamp.
#
# Usage: hack/chaos.sh VERB [ARGS]
#   nodes                      list the simulated nodes this control plane knows, their kubelet pids
#                              and network namespaces
#   node-crash NODE            SIGKILL the node's kubelet (dpcm-podsim) and every pod process it ran;
#                              heartbeats stop, the pods' statuses stay as last written
#   node-freeze NODE           SIGSTOP the kubelet and its pod processes (a hung VM)
#   node-thaw NODE             SIGCONT them
#   kubelet-freeze NODE        SIGSTOP only the kubelet: heartbeats and pod status stop, the pods keep
#                              running and answering
#   kubelet-thaw NODE          SIGCONT it
#   kill-pod NS/POD            SIGKILL the pod's container process (the kubelet restarts it)
#   delete-pod NS/POD          delete the pod (graceful, as `kubectl delete pod`)
#   drain NODE [--timeout D]   `kubectl drain` (cordon, then evict through the eviction API, which
#                              honours PodDisruptionBudgets); fails after D (default 120s)
#   uncordon NODE              `kubectl uncordon`
#   restart COMPONENT          apiserver | etcd | controller-manager | scheduler | operator
#                              (operator: SIGTERM each operator listed in $DPCM_TESTENV_DIR/operators/
#                              and wait for its supervisor to start it again, as a kubelet restarts
#                              a container; else `kubectl rollout restart` of dpcm-system/dpcm-operator)
#   partition NODE [--from PEERS]  drop every packet between the node's network namespace and
#                              PEERS, a comma-separated list of apiserver | operator | clients | all
#                              (default all; nftables inside the namespace; see hack/netns.sh)
#   heal NODE                  remove every partition of the node
#
# Reverse a fault with its counterpart: node-crash -> `SimulatedNodes::Restart` (tests) or
# starting dpcm-podsim again with the same flags; node-freeze -> node-thaw;
# kubelet-freeze -> kubelet-thaw; drain -> uncordon; partition -> heal. Nodes are found in
# $DPCM_TESTENV_DIR/nodes/<node> (written by tests/support/SimulatedNodes: kubelet_pid=,
# state_dir=, netns= when the node has its own network namespace).
set -euo pipefail

readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly STATE="${DPCM_TESTENV_DIR:-${TMPDIR:-/tmp}/dpcm-testenv}"

log() { printf '%s [chaos] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
kube() { kubectl --kubeconfig "$STATE/kubeconfig" "$@"; }

# node_field NODE KEY: a value from the node's registry file.
node_field() {
  local file="$STATE/nodes/$1"
  [ -f "$file" ] || die "no simulated node $1 (no $file)"
  sed -n "s/^$2=//p" "$file"
}

# pod_pids NODE: the container pids of the pods bound to NODE, from the shared state dir
# (the first container's is <pod>.pid, each other container's <pod>.<container>.pid).
pod_pids() {
  local node="$1" state_dir ns pod first others name
  state_dir="$(node_field "$node" state_dir)"
  kube get pods -A --field-selector "spec.nodeName=$node" \
    -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.spec.containers[*].name}{"\n"}{end}' |
    while read -r ns pod first others; do
      [ -n "$pod" ] || continue
      [ -f "$state_dir/$ns/$pod.pid" ] && cat "$state_dir/$ns/$pod.pid"
      for name in $others; do
        [ -f "$state_dir/$ns/$pod.$name.pid" ] && cat "$state_dir/$ns/$pod.$name.pid"
      done
    done
  return 0
}

# signal_node NODE SIGNAL: the kubelet first (so it cannot react), then each pod's group.
signal_node() {
  local node="$1" signal="$2" kubelet pids pid
  kubelet="$(node_field "$node" kubelet_pid)"
  pids="$(pod_pids "$node")"
  kill "-$signal" "$kubelet" 2>/dev/null || log "kubelet $kubelet of $node is not running"
  for pid in $pids; do kill "-$signal" -- "-$pid" 2>/dev/null || true; done
  log "$node: SIG$signal to kubelet $kubelet and pod processes: ${pids//$'\n'/ }"
}

pod_pid() {
  local ns="${1%%/*}" pod="${1#*/}" node state_dir
  node="$(kube get pod -n "$ns" "$pod" -o jsonpath='{.spec.nodeName}')"
  [ -n "$node" ] || die "$1 is not bound to a node"
  state_dir="$(node_field "$node" state_dir)"
  [ -f "$state_dir/$ns/$pod.pid" ] || die "$1 has no running process on $node"
  cat "$state_dir/$ns/$pod.pid"
}

# The operators the tests run (tests/support/OperatorEnv lists each with pid= and restarts
# it when it exits), else the chart's Deployment.
restart_operator() {
  local file pid new deadline restarted=false
  for file in "$STATE"/operators/*; do
    [ -f "$file" ] || continue
    pid="$(sed -n 's/^pid=//p' "$file")"
    kill -0 "$pid" 2>/dev/null || continue
    log "restart operator: SIGTERM pid $pid"
    kill -TERM "$pid"
    deadline=$((SECONDS + 30))
    until new="$(sed -n 's/^pid=//p' "$file" 2>/dev/null)" && [ -n "$new" ] && [ "$new" != "$pid" ] &&
      kill -0 "$new" 2>/dev/null; do
      [ "$SECONDS" -lt "$deadline" ] || die "operator $pid was not started again in 30 s"
      sleep 0.1
    done
    log "restart operator: pid $pid -> $new"
    restarted=true
  done
  "$restarted" && return 0
  kube -n dpcm-system get deployment dpcm-operator >/dev/null 2>&1 ||
    die "no operator listed in $STATE/operators and no deployment dpcm-system/dpcm-operator"
  log "restart operator: kubectl rollout restart deployment/dpcm-operator"
  kube -n dpcm-system rollout restart deployment/dpcm-operator >&2
  kube -n dpcm-system rollout status deployment/dpcm-operator --timeout=120s >&2
  log "restart operator: ready"
}

main() {
  local verb="${1:-}"
  shift || true
  case "$verb" in
    nodes)
      local file
      for file in "$STATE"/nodes/*; do
        [ -f "$file" ] || continue
        local node
        node="$(basename "$file")"
        printf '%s %s %s\n' "$node" "$(node_field "$node" kubelet_pid)" "$(node_field "$node" netns)"
      done
      ;;
    node-crash) [ $# -eq 1 ] || die "node-crash NODE"; log "node-crash $1"; signal_node "$1" KILL ;;
    node-freeze) [ $# -eq 1 ] || die "node-freeze NODE"; log "node-freeze $1"; signal_node "$1" STOP ;;
    node-thaw) [ $# -eq 1 ] || die "node-thaw NODE"; log "node-thaw $1"; signal_node "$1" CONT ;;
    kubelet-freeze | kubelet-thaw)
      [ $# -eq 1 ] || die "$verb NODE"
      local kubelet signal=STOP
      [ "$verb" = kubelet-thaw ] && signal=CONT
      kubelet="$(node_field "$1" kubelet_pid)"
      kill "-$signal" "$kubelet"
      log "$verb $1: SIG$signal to kubelet $kubelet"
      ;;
    kill-pod)
      [ $# -eq 1 ] || die "kill-pod NS/POD"
      local pid
      pid="$(pod_pid "$1")"
      kill -KILL "$pid"
      log "kill-pod $1: SIGKILL pid $pid"
      ;;
    delete-pod)
      [ $# -eq 1 ] || die "delete-pod NS/POD"
      log "delete-pod $1"
      kube delete pod -n "${1%%/*}" "${1#*/}" --wait=false >&2
      ;;
    drain)
      if ! { [ $# -eq 1 ] || { [ $# -eq 3 ] && [ "$2" = --timeout ]; }; }; then
        die "drain NODE [--timeout D]"
      fi
      log "drain $1"
      if ! kube drain "$1" --ignore-daemonsets --delete-emptydir-data --force --timeout="${3:-120s}" >&2; then
        die "drain $1: kubectl drain failed (still cordoned; a PodDisruptionBudget may forbid an eviction)"
      fi
      log "drain $1: done"
      ;;
    uncordon) [ $# -eq 1 ] || die "uncordon NODE"; log "uncordon $1"; kube uncordon "$1" >&2 ;;
    restart)
      case "${1:-}" in
        apiserver | controller-manager | scheduler)
          log "restart $1"; "$REPO_ROOT/hack/testenv.sh" "restart-$1"; log "restart $1: ready" ;;
        etcd) log "restart etcd"; "$REPO_ROOT/hack/testenv.sh" restart-etcd; log "restart etcd: ready" ;;
        operator) restart_operator ;;
        *) die "restart apiserver|etcd|controller-manager|scheduler|operator" ;;
      esac
      ;;
    partition)
      if ! { [ $# -eq 1 ] || { [ $# -eq 3 ] && [ "$2" = --from ]; }; }; then
        die "partition NODE [--from PEERS]"
      fi
      local node="$1" peers="${3:-all}" peer
      [ -n "$(node_field "$node" netns)" ] ||
        die "$node has no network namespace of its own (single-network mode): cannot partition it"
      log "partition $node from $peers"
      for peer in ${peers//,/ }; do "$REPO_ROOT/hack/netns.sh" partition "$node" "$peer"; done
      ;;
    heal)
      [ $# -eq 1 ] || die "heal NODE"
      [ -n "$(node_field "$1" netns)" ] || die "$1 has no network namespace of its own"
      log "heal $1"
      "$REPO_ROOT/hack/netns.sh" heal "$1"
      ;;
    *) sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
