#!/usr/bin/env bash
# Runs a real local Kubernetes control plane (etcd + kube-apiserver v1.20) on loopback.
#
# Usage: hack/testenv.sh COMMAND
#   build              build kube-apiserver from Debian's kubernetes source once (cached)
#   build-peer         build client-go's leader-election example (the failover peer)
#   up [--ephemeral]   start etcd + kube-apiserver (reuses a running one); --ephemeral marks
#                      an environment this call started for teardown by `down --if-ephemeral`
#   down [--if-ephemeral]  stop everything and remove the state directory
#   env                print `export` lines for KUBECONFIG and friends
#   status             exit 0 if the API server answers /readyz
#   restart-apiserver  kill and restart kube-apiserver on the same port (etcd keeps data)
#   compact            compact etcd at its current revision (forces 410 Gone on old watches)
#
# Env: DPCM_CACHE (default ~/.cache/dpcm) for the cached binaries;
#      DPCM_TESTENV_DIR (default $TMPDIR/dpcm-testenv) for certs, tokens, logs and pids.
set -euo pipefail

readonly CACHE="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}"
readonly STATE="${DPCM_TESTENV_DIR:-${TMPDIR:-/tmp}/dpcm-testenv}"
readonly APISERVER_BIN="$CACHE/bin/kube-apiserver"
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

# Runs `make WHAT=$1` in the kubernetes tree, printing progress while it runs.
make_in_tree() {
  local what="$1" tree logfile pid
  tree="$(kubernetes_tree)"
  patch_tree "$tree"
  logfile="$CACHE/build-$(basename "$what").log"
  mkdir -p "$CACHE/home"
  (
    cd "$tree"
    GOPATH="$tree/.go" CGO_ENABLED=0 HOME="$CACHE/home" GOFLAGS=-mod=vendor \
      make WHAT="$what" >"$logfile" 2>&1
  ) &
  pid=$!
  local start=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null && log "  still building $what ($((SECONDS - start)) s)"
  done
  wait "$pid" || { tail -n 30 "$logfile" >&2; die "build of $what failed (log: $logfile)"; }
  printf '%s\n' "$tree/_output/bin/$(basename "$what")"
}

cmd_build() {
  if [ -x "$APISERVER_BIN" ] && [ "$(cat "$APISERVER_BIN.patch-level" 2>/dev/null)" = "$PATCH_LEVEL" ]; then
    return
  fi
  command -v go >/dev/null || die "go is missing: run hack/deps.sh first"
  log "building kube-apiserver v1.20 from Debian source (once; about 6 minutes on 2 cores)"
  local out
  out="$(make_in_tree cmd/kube-apiserver)"
  mkdir -p "$CACHE/bin"
  install -m 0755 "$out" "$APISERVER_BIN.new"
  mv -f "$APISERVER_BIN.new" "$APISERVER_BIN"
  echo "$PATCH_LEVEL" >"$APISERVER_BIN.patch-level"
  log "kube-apiserver cached at $APISERVER_BIN"
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
  out="$(make_in_tree vendor/k8s.io/client-go/examples/leader-election)"
  mkdir -p "$CACHE/bin"
  install -m 0755 "$out" "$PEER_BIN"
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

make_pki() {
  local pki="$STATE/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=dpcm-testenv-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' \
    >"$pki/apiserver.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
  # A client certificate for an admin identity (tests the client-certificate path).
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=cert-admin" \
    -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$pki/client.ext"
  openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/client.ext" -out "$pki/admin.crt" 2>/dev/null
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

start_etcd() {
  local port peer
  port="$(free_port)"; peer="$(free_port)"
  echo "$port" >"$STATE/etcd.port"
  setsid etcd --name dpcm-testenv --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "dpcm-testenv=http://127.0.0.1:$peer" \
    >"$STATE/etcd.log" 2>&1 </dev/null &
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
  if running; then
    log "reusing the control plane at $STATE"
    return
  fi
  cmd_down >/dev/null 2>&1 || true
  cmd_build
  command -v etcd >/dev/null || die "etcd is missing: run hack/deps.sh first"
  mkdir -p "$STATE"
  chmod 700 "$STATE"
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
  "$ephemeral" && touch "$STATE/ephemeral"
  log "control plane ready: https://127.0.0.1:$(cat "$STATE/apiserver.port") (KUBECONFIG=$STATE/kubeconfig)"
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
  stop_pidfile "$STATE/apiserver.pid"
  stop_pidfile "$STATE/etcd.pid"
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
    status) running ;;
    restart-apiserver) cmd_restart_apiserver ;;
    compact) cmd_compact ;;
    *) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
