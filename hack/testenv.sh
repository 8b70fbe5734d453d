#!/usr/bin/env bash
# Runs a real local Kubernetes control plane on loopback: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler v1.20 (no kubelet: tests/podsim plays it).
#
# Usage: hack/testenv.sh COMMAND
#   build              build kube-apiserver, kube-controller-manager and kube-scheduler from
#                      Debian's kubernetes source once (cached)
#   build-peer         build client-go's leader-election example (the failover peer)
#   up [--ephemeral]   start the control plane (reuses a running one); --ephemeral marks
#                      an environment this call started for teardown by `down --if-ephemeral`
#   down [--if-ephemeral]  stop everything and remove the state directory
#   env                print `export` lines for KUBECONFIG and friends
#   status             print each component's state; exit 0 if all of them answer
#   logs COMPONENT     print the log path of etcd|apiserver|controller-manager|scheduler
#   restart-apiserver  kill and restart kube-apiserver on the same port (etcd keeps data)
#   restart-etcd | restart-controller-manager | restart-scheduler   the same for those
#   compact            compact etcd at its current revision (forces 410 Gone on old watches)
#
# Env: DPCM_CACHE (default ~/.cache/dpcm) for the cached binaries;
#      DPCM_TESTENV_DIR (default $TMPDIR/dpcm-testenv) for certs, tokens, logs and pids.
#      DPCM_NETNS=0 keeps every node on the host's loopback network (single-network mode);
#      by default `up` also creates the nodes' network (hack/netns.sh) when it can, and
#      says so when it cannot.
#      Node lifecycle (read by `up`; the real v1.20 defaults):
#      DPCM_NODE_MONITOR_PERIOD (5s), DPCM_NODE_MONITOR_GRACE_PERIOD (40s),
#      DPCM_NODE_STARTUP_GRACE_PERIOD (1m0s), DPCM_POD_EVICTION_TIMEOUT (5m0s);
#      DPCM_SCHEDULER_QPS / DPCM_SCHEDULER_BURST (50 / 100, kube-scheduler's own: it binds
#      every pod, so thousands of pods take a minute at the defaults).
set -euo pipefail

readonly CACHE="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}"
readonly STATE="${DPCM_TESTENV_DIR:-${TMPDIR:-/tmp}/dpcm-testenv}"
readonly APISERVER_BIN="$CACHE/bin/kube-apiserver"
readonly CONTROLLER_MANAGER_BIN="$CACHE/bin/kube-controller-manager"
readonly SCHEDULER_BIN="$CACHE/bin/kube-scheduler"
# The control-plane binaries built from the Debian tree, all with the same patches.
readonly CONTROL_PLANE=(kube-apiserver kube-controller-manager kube-scheduler)
# kube-controller-manager's controllers: all of `*` except those that need a cloud
# provider or a pod network this world does not have (see README "The test world").
readonly CONTROLLERS='*,-service,-route,-cloud-node-lifecycle,-nodeipam'
# Bump when patch_tree changes: a cached binary with another stamp is rebuilt.
readonly PATCH_LEVEL=2
readonly PEER_BIN="$CACHE/bin/leader-election-example"
readonly SRC_DIR="$CACHE/src"
readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- build -------------------------------------------------------------------

ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return
  fi
  log "adding a deb-src entry for bookworm main on the machine's own mirror"
  local uri signed_by
  uri="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | head -n1 | awk '{print $2}')"
  signed_by="$(grep -hsE '^Signed-By:' /etc/apt/sources.list.d/*.sources | head -n1 | awk '{print $2}')"
  if [ -n "$uri" ]; then
    as_root tee /etc/apt/sources.list.d/dpcm-deb-src.sources >/dev/null <<SRC
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
${signed_by:+Signed-By: $signed_by}
SRC
  else
    uri="$(grep -hsE '^deb ' /etc/apt/sources.list | head -n1 | awk '{print $2}')"
    [ -n "$uri" ] || die "no Debian mirror found in /etc/apt to add deb-src for"
    echo "deb-src $uri bookworm main" | as_root tee /etc/apt/sources.list.d/dpcm-deb-src.list >/dev/null
  fi
  as_root apt-get update -qq
}

kubernetes_tree() {
  local tree
  tree="$(find "$SRC_DIR" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' 2>/dev/null | head -n1)"
  if [ -z "$tree" ]; then
    ensure_deb_src
    mkdir -p "$SRC_DIR"
    log "fetching Debian's kubernetes source package"
    (cd "$SRC_DIR" && apt-get source -qq kubernetes >/dev/null 2>&1) || die "apt-get source kubernetes failed"
    tree="$(find "$SRC_DIR" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -n1)"
    mkdir -p "$tree/.go/src/k8s.io"
    ln -sfn ../../.. "$tree/.go/src/k8s.io/kubernetes"
  fi
  printf '%s\n' "$tree"
}

# Debian builds v1.20 with Go 1.19, which the vendored code predates. Two fixes, both
# idempotent, make custom resources work:
# 1. reflect2 v1.0.1 crashes the API server (SIGSEGV) on the first custom-resource
#    write under Go >= 1.18: vendor Debian's reflect2 1.0.2 instead.
# 2. The OpenAPI type validator compares reflect.Values with DeepEqual to detect zero
#    values; under newer Go "" then counts as null and is rejected ("must be of type
#    string"). Only a real nil is null.
patch_tree() {
  local tree="$1" reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$reflect2" ] || die "Debian's golang-github-modern-go-reflect2-dev is missing: run hack/deps.sh"
  rsync -a --delete --exclude '*_test.go' "$reflect2/" "$tree/vendor/github.com/modern-go/reflect2/"
  sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#g' \
    "$tree/vendor/modules.txt" "$tree/go.mod"
  local file
  for file in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go \
    vendor/github.com/go-openapi/validate/type.go; do
    sed -i 's#if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {#if data == nil {#' \
      "$tree/$file"
  done
}

# Runs `make WHAT="$2..."` in the kubernetes tree (log: $CACHE/build-$1.log), printing
# progress while it runs; prints the directory holding the built binaries.
make_in_tree() {
  local label="$1" tree logfile pid
  shift
  tree="$(kubernetes_tree)"
  patch_tree "$tree"
  logfile="$CACHE/build-$label.log"
  mkdir -p "$CACHE/home"
  (
    cd "$tree"
    GOPATH="$tree/.go" CGO_ENABLED=0 HOME="$CACHE/home" GOFLAGS=-mod=vendor \
      make WHAT="$*" >"$logfile" 2>&1
  ) &
  pid=$!
  local start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null && log "  still building $label ($((SECONDS - start)) s)"
  done
  wait "$pid" || { tail -n 30 "$logfile" >&2; die "build of $label failed (log: $logfile)"; }
  log "  built $label in $((SECONDS - start)) s"
  printf '%s\n' "$tree/_output/bin"
}

# True when $CACHE/bin/$1 exists and was built with the current patch level.
cached() { [ -x "$CACHE/bin/$1" ] && [ "$(cat "$CACHE/bin/$1.patch-level" 2>/dev/null)" = "$PATCH_LEVEL" ]; }

cmd_build() {
  local missing=() name
  for name in "${CONTROL_PLANE[@]}"; do cached "$name" || missing+=("$name"); done
  [ "${#missing[@]}" -gt 0 ] || return 0
  command -v go >/dev/null || die "go is missing: run hack/deps.sh first"
  log "building ${missing[*]} v1.20 from Debian source (once; about 6 minutes for" \
    "kube-apiserver and 2-4 more for the controller-manager and scheduler on 2 cores)"
  local out
  out="$(make_in_tree "$(IFS=-; echo "${missing[*]}")" "${missing[@]/#/cmd/}")"
  mkdir -p "$CACHE/bin"
  for name in "${missing[@]}"; do
    install -m 0755 "$out/$name" "$CACHE/bin/$name.new"
    mv -f "$CACHE/bin/$name.new" "$CACHE/bin/$name"
    echo "$PATCH_LEVEL" >"$CACHE/bin/$name.patch-level"
    log "$name cached at $CACHE/bin/$name"
  done
}

cmd_build_peer() {
  if [ -x "$PEER_BIN" ]; then return; fi
  log "building client-go's leader-election example with controller-runtime's timings (15/10/2 s)"
  local example
  example="$(kubernetes_tree)/staging/src/k8s.io/client-go/examples/leader-election/main.go"
  sed -i -e 's/LeaseDuration:   60 \* time.Second/LeaseDuration:   15 * time.Second/' \
    -e 's/RenewDeadline:   15 \* time.Second/RenewDeadline:   10 * time.Second/' \
    -e 's/RetryPeriod:     5 \* time.Second/RetryPeriod:     2 * time.Second/' "$example"
  grep -q 'LeaseDuration:   15 \* time.Second' "$example" || die "could not set the example's timings"
  local out
  out="$(make_in_tree leader-election vendor/k8s.io/client-go/examples/leader-election)"
  mkdir -p "$CACHE/bin"
  install -m 0755 "$out/leader-election" "$PEER_BIN"
}

# --- run ---------------------------------------------------------------------

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return
    fi
  done
  die "no free port found"
}

random_token() { openssl rand -hex 24; }

# The test world's network (hack/netns.sh): a bridge the nodes' namespaces reach the API
# server on, through a relay from the bridge address to its loopback port (everything of
# the control plane stays bound to loopback). Sets BRIDGE_IP, or leaves it empty in
# single-network mode.
BRIDGE_IP=""
setup_network() {
  if [ "${DPCM_NETNS:-1}" = 0 ]; then
    log "single-network mode (DPCM_NETNS=0): every node shares the host's loopback network"
    return
  fi
  if ! command -v socat >/dev/null; then
    log "no network namespaces: socat (the API server's relay) is missing; run hack/deps.sh." \
      "Single-network mode: every node shares the host's loopback network"
    return
  fi
  if ! "$REPO_ROOT/hack/netns.sh" up; then
    log "no network namespaces (see above): single-network mode, every node shares the" \
      "host's loopback network"
    return
  fi
  BRIDGE_IP="$(sed -n 's/^BRIDGE_IP=//p' "$STATE/net/env")"
}

# Restarts the relay from the bridge to the API server's loopback port unless it runs.
ensure_relay() {
  [ -f "$STATE/net/env" ] || return 0
  local bridge_ip port
  bridge_ip="$(sed -n 's/^BRIDGE_IP=//p' "$STATE/net/env")"
  port="$(cat "$STATE/apiserver.port")"
  if [ -f "$STATE/relay.pid" ] && kill -0 "$(cat "$STATE/relay.pid")" 2>/dev/null; then return; fi
  setsid socat "TCP4-LISTEN:$port,bind=$bridge_ip,fork,reuseaddr" "TCP4:127.0.0.1:$port" \
    >>"$STATE/relay.log" 2>&1 </dev/null &
  echo $! >"$STATE/relay.pid"
  # The nodes' kubeconfig: the admin identity, the API server at its bridge address.
  sed "s#https://127.0.0.1:#https://$bridge_ip:#" "$STATE/kubeconfig" >"$STATE/kubeconfig-node"
}

# client_cert NAME SUBJECT: $STATE/pki/NAME.{key,crt} signed by the test CA.
client_cert() {
  local pki="$STATE/pki" name="$1" subject="$2"
  openssl req -newkey rsa:2048 -nodes -subj "$subject" \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/client.ext" -out "$pki/$name.crt" 2>/dev/null
}

make_pki() {
  local pki="$STATE/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=dpcm-testenv-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,%sDNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' \
    "${BRIDGE_IP:+IP:$BRIDGE_IP,}" >"$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$pki/client.ext"
  # A client certificate for an admin identity (tests the client-certificate path), and
  # the identities the default RBAC bootstrap roles bind, as kubeadm issues them.
  client_cert admin "/O=system:masters/CN=cert-admin"
  client_cert controller-manager "/CN=system:kube-controller-manager"
  client_cert scheduler "/CN=system:kube-scheduler"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# Static identities: an admin, the chart's operator service account, and an
# unprivileged service account (for Forbidden tests).
make_tokens() {
  local admin operator restricted
  admin="$(random_token)"; operator="$(random_token)"; restricted="$(random_token)"
  cat >"$STATE/tokens.csv" <<TOK
$admin,admin,admin-uid,"system:masters"
$operator,system:serviceaccount:dpcm-system:dpcm-operator,dpcm-operator-uid,"system:serviceaccounts,system:serviceaccounts:dpcm-system,system:authenticated"
$restricted,system:serviceaccount:default:restricted,restricted-uid,"system:serviceaccounts,system:serviceaccounts:default,system:authenticated"
TOK
  printf '%s' "$admin" >"$STATE/admin.token"
  printf '%s' "$operator" >"$STATE/operator.token"
  printf '%s' "$restricted" >"$STATE/restricted.token"
}

write_kubeconfig() {
  local file="$1" user="$2" credentials="$3"
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: dpcm-testenv
  cluster:
    server: https://127.0.0.1:$(cat "$STATE/apiserver.port")
    certificate-authority: $STATE/pki/ca.crt
users:
- name: $user
  user:
$credentials
contexts:
- name: dpcm-testenv
  context: {cluster: dpcm-testenv, user: $user, namespace: default}
current-context: dpcm-testenv
KC
}

# Starts etcd on the ports of an earlier start (restart-etcd), else on free ones.
start_etcd() {
  local port peer
  [ -f "$STATE/etcd.port" ] || free_port >"$STATE/etcd.port"
  [ -f "$STATE/etcd.peer-port" ] || free_port >"$STATE/etcd.peer-port"
  port="$(cat "$STATE/etcd.port")"; peer="$(cat "$STATE/etcd.peer-port")"
  setsid etcd --name dpcm-testenv --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "dpcm-testenv=http://127.0.0.1:$peer" \
    >>"$STATE/etcd.log" 2>&1 </dev/null &
  echo $! >"$STATE/etcd.pid"
}

start_apiserver() {
  local port
  port="$(cat "$STATE/apiserver.port")"
  # The watch cache is off for configmaps only, so that compacting etcd produces a
  # real 410 Gone on a stale configmap watch (the relist test); every other
  # resource is served from the watch cache as on a real cluster.
  # OwnerReferencesPermissionEnforcement (on in OpenShift) makes setting
  # blockOwnerDeletion need update on the owner's finalizers: the chart's RBAC is
  # tested against the stricter setting.
  setsid "$APISERVER_BIN" \
    --etcd-servers="http://127.0.0.1:$(cat "$STATE/etcd.port")" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" --insecure-port=0 \
    --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
    --client-ca-file="$STATE/pki/ca.crt" \
    --token-auth-file="$STATE/tokens.csv" --authorization-mode=RBAC \
    --service-account-key-file="$STATE/pki/sa.pub" \
    --service-account-signing-key-file="$STATE/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.96.0.0/16 \
    --disable-admission-plugins=ServiceAccount \
    --enable-admission-plugins=OwnerReferencesPermissionEnforcement \
    --watch-cache-sizes=configmaps#0 \
    >"$STATE/apiserver.log" 2>&1 </dev/null &
  echo $! >"$STATE/apiserver.pid"
}

# The controller-manager and the scheduler serve /healthz on plain HTTP on loopback
# (the deprecated --port; --secure-port=0): no authentication needed to probe them.
start_controller_manager() {
  local port
  port="$(free_port)"
  echo "$port" >"$STATE/controller-manager.port"
  # --use-service-account-credentials: each controller runs as its own service account
  # (system:serviceaccount:kube-system:<controller>), as kubeadm clusters do.
  # One instance: --leader-elect=false, so a restart never waits out an old lease.
  setsid "$CONTROLLER_MANAGER_BIN" \
    --kubeconfig="$STATE/kubeconfig-controller-manager" \
    --address=127.0.0.1 --port="$port" --secure-port=0 \
    --leader-elect=false \
    --controllers="$CONTROLLERS" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$STATE/pki/sa.key" \
    --root-ca-file="$STATE/pki/ca.crt" \
    --cluster-signing-cert-file="$STATE/pki/ca.crt" --cluster-signing-key-file="$STATE/pki/ca.key" \
    --node-monitor-period="$(cat "$STATE/node-monitor-period")" \
    --node-monitor-grace-period="$(cat "$STATE/node-monitor-grace-period")" \
    --node-startup-grace-period="$(cat "$STATE/node-startup-grace-period")" \
    --pod-eviction-timeout="$(cat "$STATE/pod-eviction-timeout")" \
    >>"$STATE/controller-manager.log" 2>&1 </dev/null &
  echo $! >"$STATE/controller-manager.pid"
}

start_scheduler() {
  local port
  port="$(free_port)"
  echo "$port" >"$STATE/scheduler.port"
  setsid "$SCHEDULER_BIN" \
    --kubeconfig="$STATE/kubeconfig-scheduler" \
    --address=127.0.0.1 --port="$port" --secure-port=0 \
    --leader-elect=false \
    --kube-api-qps="${DPCM_SCHEDULER_QPS:-50}" --kube-api-burst="${DPCM_SCHEDULER_BURST:-100}" \
    >>"$STATE/scheduler.log" 2>&1 </dev/null &
  echo $! >"$STATE/scheduler.pid"
}

# healthz COMPONENT: its plain-HTTP /healthz answers ok.
healthz() {
  [ -f "$STATE/$1.port" ] &&
    curl -fsS --max-time 2 "http://127.0.0.1:$(cat "$STATE/$1.port")/healthz" >/dev/null 2>&1
}

# wait_healthy COMPONENT: until /healthz answers, or fail with the end of its log.
wait_healthy() {
  local component="$1" deadline=$((SECONDS + 60))
  until healthz "$component"; do
    if ! kill -0 "$(cat "$STATE/$component.pid")" 2>/dev/null; then
      tail -n 20 "$STATE/$component.log" >&2; die "kube-$component exited"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$STATE/$component.log" >&2; die "kube-$component not healthy in 60 s"; }
    sleep 0.2
  done
}

# Node-lifecycle timings for this environment (env or the real v1.20 defaults), kept in
# the state directory so that restarts and tests see the same values.
save_node_lifecycle() {
  echo "${DPCM_NODE_MONITOR_PERIOD:-5s}" >"$STATE/node-monitor-period"
  echo "${DPCM_NODE_MONITOR_GRACE_PERIOD:-40s}" >"$STATE/node-monitor-grace-period"
  echo "${DPCM_NODE_STARTUP_GRACE_PERIOD:-1m0s}" >"$STATE/node-startup-grace-period"
  echo "${DPCM_POD_EVICTION_TIMEOUT:-5m0s}" >"$STATE/pod-eviction-timeout"
}

# Starts the controller-manager and the scheduler unless they already answer.
ensure_controllers() {
  local component
  for component in controller-manager scheduler; do
    healthz "$component" && continue
    stop_pidfile "$STATE/$component.pid"
    "start_${component//-/_}"
  done
  wait_healthy controller-manager
  wait_healthy scheduler
}

readyz() {
  curl -fsS --max-time 2 --cacert "$STATE/pki/ca.crt" \
    -H "Authorization: Bearer $(cat "$STATE/admin.token")" \
    "https://127.0.0.1:$(cat "$STATE/apiserver.port")/readyz" >/dev/null 2>&1
}

wait_ready() {
  local deadline=$((SECONDS + 90))
  until readyz; do
    if ! kill -0 "$(cat "$STATE/apiserver.pid")" 2>/dev/null; then
      tail -n 20 "$STATE/apiserver.log" >&2; die "kube-apiserver exited"
    fi
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$STATE/apiserver.log" >&2; die "kube-apiserver not ready in 90 s"; }
    sleep 0.5
  done
}

running() { [ -f "$STATE/apiserver.port" ] && [ -f "$STATE/admin.token" ] && readyz; }

cmd_up() {
  local ephemeral=false
  [ "${1:-}" = "--ephemeral" ] && ephemeral=true
  if running && [ -f "$STATE/kubeconfig-scheduler" ]; then
    ensure_controllers
    ensure_relay
    log "reusing the control plane at $STATE"
    return
  fi
  cmd_down >/dev/null 2>&1 || true
  cmd_build
  command -v etcd >/dev/null || die "etcd is missing: run hack/deps.sh first"
  mkdir -p "$STATE"
  chmod 700 "$STATE"
  setup_network
  make_pki
  make_tokens
  free_port >"$STATE/apiserver.port"
  start_etcd
  start_apiserver
  wait_ready
  write_kubeconfig "$STATE/kubeconfig" admin "    token: $(cat "$STATE/admin.token")"
  write_kubeconfig "$STATE/kubeconfig-cert" cert-admin \
    "    client-certificate: $STATE/pki/admin.crt
    client-key: $STATE/pki/admin.key"
  write_kubeconfig "$STATE/kubeconfig-restricted" restricted "    tokenFile: $STATE/restricted.token"
  write_kubeconfig "$STATE/kubeconfig-operator" dpcm-operator "    tokenFile: $STATE/operator.token"
  local component
  for component in controller-manager scheduler; do
    write_kubeconfig "$STATE/kubeconfig-$component" "system:kube-$component" \
      "    client-certificate: $STATE/pki/$component.crt
    client-key: $STATE/pki/$component.key"
  done
  ensure_relay
  save_node_lifecycle
  start_controller_manager
  start_scheduler
  wait_healthy controller-manager
  wait_healthy scheduler
  "$ephemeral" && touch "$STATE/ephemeral"
  local nodes_see=""
  [ -z "$BRIDGE_IP" ] ||
    nodes_see="; nodes in their own network namespaces reach it at https://$BRIDGE_IP:$(cat "$STATE/apiserver.port")"
  log "control plane ready: https://127.0.0.1:$(cat "$STATE/apiserver.port") with" \
    "controller-manager and scheduler (KUBECONFIG=$STATE/kubeconfig)$nodes_see"
}

stop_pidfile() {
  local pidfile="$1" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cmd_down() {
  if [ "${1:-}" = "--if-ephemeral" ] && [ ! -f "$STATE/ephemeral" ]; then
    return
  fi
  stop_pidfile "$STATE/scheduler.pid"
  stop_pidfile "$STATE/controller-manager.pid"
  stop_pidfile "$STATE/apiserver.pid"
  stop_pidfile "$STATE/etcd.pid"
  stop_pidfile "$STATE/relay.pid"
  # Operators the e2e tests run (tests/support/OperatorEnv lists them), left behind when a
  # test process was killed.
  local listed
  for listed in "$STATE"/operators/*; do
    [ -f "$listed" ] || continue
    sed -n 's/^pid=//p' "$listed" >"$listed.pid"
    stop_pidfile "$listed.pid"
  done
  "$REPO_ROOT/hack/netns.sh" down || true
  "$REPO_ROOT/hack/netns.sh" sweep || true
  rm -rf "$STATE"
  log "control plane stopped"
}

cmd_env() {
  [ -f "$STATE/kubeconfig" ] || die "no control plane at $STATE: run hack/testenv.sh up"
  cat <<ENV
export KUBECONFIG=$STATE/kubeconfig
export DPCM_TESTENV_DIR=$STATE
export DPCM_ETCD_ENDPOINT=http://127.0.0.1:$(cat "$STATE/etcd.port")
ENV
}

cmd_restart_apiserver() {
  stop_pidfile "$STATE/apiserver.pid"
  start_apiserver
  wait_ready
}

cmd_restart_etcd() {
  [ -f "$STATE/etcd.port" ] || die "no control plane at $STATE: run hack/testenv.sh up"
  stop_pidfile "$STATE/etcd.pid"
  start_etcd
  local deadline=$((SECONDS + 30))
  until ETCDCTL_API=3 etcdctl --endpoints="http://127.0.0.1:$(cat "$STATE/etcd.port")" \
    endpoint health >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$STATE/etcd.log" >&2; die "etcd not healthy in 30 s"; }
    sleep 0.2
  done
  wait_ready
}

cmd_restart_component() {
  local component="$1"
  [ -f "$STATE/kubeconfig-$component" ] || die "no control plane at $STATE: run hack/testenv.sh up"
  stop_pidfile "$STATE/$component.pid"
  "start_${component//-/_}"
  wait_healthy "$component"
}

cmd_status() {
  local ok=0 component
  if running; then log "kube-apiserver      ready   https://127.0.0.1:$(cat "$STATE/apiserver.port")"
  else log "kube-apiserver      down"; ok=1; fi
  for component in controller-manager scheduler; do
    if healthz "$component"; then log "$(printf 'kube-%-18s healthy' "$component") log $STATE/$component.log"
    else log "$(printf 'kube-%-18s down' "$component")"; ok=1; fi
  done
  if [ -f "$STATE/net/env" ]; then "$REPO_ROOT/hack/netns.sh" status || ok=1
  else log "network             single (every node on the host's loopback)"; fi
  return "$ok"
}

cmd_logs() {
  case "${1:-}" in
    etcd | apiserver | controller-manager | scheduler) printf '%s\n' "$STATE/$1.log" ;;
    *) die "logs: etcd|apiserver|controller-manager|scheduler" ;;
  esac
}

cmd_compact() {
  local endpoint revision
  endpoint="http://127.0.0.1:$(cat "$STATE/etcd.port")"
  revision="$(ETCDCTL_API=3 etcdctl --endpoints="$endpoint" endpoint status -w json \
    | jq -r '.[0].Status.header.revision')"
  ETCDCTL_API=3 etcdctl --endpoints="$endpoint" compact "$revision" >/dev/null
  echo "$revision"
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    build) cmd_build ;;
    build-peer) cmd_build_peer ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    env) cmd_env ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    restart-apiserver) cmd_restart_apiserver ;;
    restart-etcd) cmd_restart_etcd ;;
    restart-controller-manager) cmd_restart_component controller-manager ;;
    restart-scheduler) cmd_restart_component scheduler ;;
    compact) cmd_compact ;;
    *) sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
