#!/usr/bin/env bash
# The test world's network: one Linux network namespace per simulated node (and one client
# host) on a bridge in the root namespace, and the partitions hack/chaos.sh cuts into it.
#
# Usage: hack/netns.sh COMMAND
#   up                    create this environment's bridge and client host (idempotent);
#                         exits 3 when namespaces cannot be created here
#   down                  delete every namespace, link and rule of this environment (idempotent)
#   sweep                 also delete those of environments whose state directory is gone
#                         (left behind by a crashed test or a removed $DPCM_TESTENV_DIR)
#   add-node NODE         give NODE its own namespace (replacing a stale one); prints
#                         netns=, host_ip=, pod_ip_base=, pod_ip_count= lines
#   del-node NODE         kill what runs in NODE's namespace and delete it
#   partition NODE PEERS  drop traffic between NODE and PEERS: apiserver | operator |
#                         clients | all (repeatable; each call adds to the cut)
#   heal NODE             remove every cut of NODE
#   client CMD [ARGS]     run CMD on the client host (e.g. curl a pod's address)
#   env                   print the network's shell variables (NET_ID=, BRIDGE_IP=, ...)
#   status                list the namespaces and cuts of this environment
#
# Address plan (NET_ID is 200..249, the first one free on this machine, kept in
# $DPCM_TESTENV_DIR/net/env), all inside 10.NET_ID.0.0/16 on the bridge only:
#   10.N.0.1          the bridge `dpcmN` in the root namespace: the kube-apiserver (through a
#                     relay to its loopback port) and the operator, as the pods see them
#   10.N.0.2          the client host, namespace `dpcmN-client`
#   10.N.0.(10+S)     the node in slot S (0..239), namespace `dpcmN-nS`
#   10.N.(S+1).1-254  that node's pods (a local route for the /24 on the namespace's lo)
# There is no default route in any namespace and the root namespace's forwarding setting
# is left alone, so nothing leaves 10.N.0.0/16; every node answers ARP for its pods'
# addresses, so the /16 is one flat link and no routes are needed.
set -euo pipefail

readonly STATE="${DPCM_TESTENV_DIR:-${TMPDIR:-/tmp}/dpcm-testenv}"
readonly NET_DIR="$STATE/net"
# Per-machine markers: which state directory owns which network (for `sweep`).
readonly RUN_DIR=/run/dpcm-netns
readonly CHAOS_TABLE=dpcm_chaos

log() { printf '%s [netns] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

load_env() {
  [ -f "$NET_DIR/env" ] || die "no network for $STATE (run hack/netns.sh up)"
  # shellcheck disable=SC1091
  . "$NET_DIR/env"
}

# kill_namespace NS: SIGKILL every process inside, then delete the namespace.
kill_namespace() {
  local ns="$1" pids
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns" || return 0
  pids="$(ip netns pids "$ns" 2>/dev/null || true)"
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}

# remove_net N: every namespace of network N, its bridge and its marker.
remove_net() {
  local id="$1" ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^dpcm${id}-" || true); do
    kill_namespace "$ns"
  done
  # Host ends of veths whose namespace outlives its name for a while (closed TCP
  # connections still finishing in it keep it alive): deleting one end deletes both.
  local link
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
    grep -E "^dpcm${id}[nc][0-9]*$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "dpcm$id" 2>/dev/null || true
  rm -f "$RUN_DIR/$id" 2>/dev/null || true
}

# A free network id: no bridge of that name, no address or route in 10.N.0.0/16.
pick_net_id() {
  local id
  for id in $(seq 200 249); do
    ip link show "dpcm$id" >/dev/null 2>&1 && continue
    ip -4 route show table all | grep -qE "(^|[^0-9.])10\.$id\." && continue
    ip -4 addr show | grep -qE "inet 10\.$id\." && continue
    printf '%s\n' "$id"
    return
  done
  die "no free network id in 200..249"
}

# mac_of 10.N.0.H: the fixed MAC of that address (02:00:0a:N:00:H, locally administered).
mac_of() {
  local IFS=.
  # shellcheck disable=SC2086
  set -- $1
  printf '02:00:%02x:%02x:%02x:%02x\n' "$1" "$2" "$3" "$4"
}

# veth_into NS HOST_IF ADDR: a veth pair from the bridge into NS, eth0 there with ADDR/16.
# eth0's MAC follows from ADDR, so that a namespace made again for the same node (a
# restart, the next test) does not leave stale ARP entries behind in its peers.
veth_into() {
  local ns="$1" host_if="$2" addr="$3"
  ip link del "$host_if" 2>/dev/null || true
  ip link add "$host_if" type veth peer name eth0 address "$(mac_of "$addr")" netns "$ns"
  ip link set "$host_if" master "$BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$addr/16" dev eth0
  ip -n "$ns" link set eth0 up
}

cmd_up() {
  if [ -f "$NET_DIR/env" ]; then
    load_env
    if ip link show "$BRIDGE" >/dev/null 2>&1; then return 0; fi
  fi
  command -v ip >/dev/null || { log "no ip command (iproute2)"; exit 3; }
  [ "$(id -u)" -eq 0 ] || { log "not root: cannot create network namespaces"; exit 3; }
  cmd_sweep
  local id
  id="$(pick_net_id)"
  mkdir -p "$NET_DIR/nodes" "$RUN_DIR" 2>/dev/null || true
  if ! ip link add "dpcm$id" type bridge 2>/dev/null; then
    log "cannot create a bridge here (not root, or no CAP_NET_ADMIN)"
    exit 3
  fi
  cat >"$NET_DIR/env" <<ENV
NET_ID=$id
BRIDGE=dpcm$id
BRIDGE_IP=10.$id.0.1
CLIENT_NETNS=dpcm$id-client
CLIENT_IP=10.$id.0.2
ENV
  printf '%s\n' "$STATE" >"$RUN_DIR/$id"
  load_env
  # A fixed address: a bridge otherwise takes the lowest of its ports' and changes it as
  # nodes come and go, leaving the namespaces' ARP caches stale for tens of seconds.
  if ! { ip link set "$BRIDGE" address "$(mac_of "$BRIDGE_IP")" &&
    ip addr add "$BRIDGE_IP/16" dev "$BRIDGE" && ip link set "$BRIDGE" up &&
    ip netns add "$CLIENT_NETNS" && veth_into "$CLIENT_NETNS" "dpcm${id}c" "$CLIENT_IP"; }; then
    remove_net "$id"
    rm -rf "$NET_DIR"
    log "cannot create network namespaces here"
    exit 3
  fi
  log "network 10.$id.0.0/16 on bridge $BRIDGE ($BRIDGE_IP), client host $CLIENT_NETNS ($CLIENT_IP)"
}

cmd_down() {
  [ -f "$NET_DIR/env" ] || return 0
  load_env
  remove_net "$NET_ID"
  rm -rf "$NET_DIR"
  log "network 10.$NET_ID.0.0/16 removed"
}

# orphaned ID: network ID's owning state directory is gone or no longer holds it. A
# directory this user cannot look into counts as alive.
orphaned() {
  local id="$1" owner
  owner="$(cat "$RUN_DIR/$id" 2>/dev/null || true)"
  [ -n "$owner" ] && [ -d "$owner" ] || return 0
  [ -x "$owner" ] || return 1
  [ -r "$owner/net/env" ] || [ ! -e "$owner/net/env" ] || return 1
  ! grep -qx "NET_ID=$id" "$owner/net/env" 2>/dev/null
}

# Networks whose owning state directory no longer holds them: left by a crash. Root only.
cmd_sweep() {
  [ "$(id -u)" -eq 0 ] || return 0
  local id
  for id in $( {
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//'
    ip netns list 2>/dev/null | awk '{print $1}'
  } | sed -nE 's/^dpcm([0-9]+)([nc][0-9]*|-.*)?$/\1/p' | sort -u); do
    orphaned "$id" || continue
    log "sweeping network $id (owner $(cat "$RUN_DIR/$id" 2>/dev/null || echo unknown) is gone)"
    remove_net "$id"
  done
}

# The slot of NODE: the one it had, else the lowest free one.
node_slot() {
  local node="$1" slot
  if [ -f "$NET_DIR/nodes/$node" ]; then
    sed -n 's/^slot=//p' "$NET_DIR/nodes/$node"
    return
  fi
  for slot in $(seq 0 239); do
    grep -qx "slot=$slot" "$NET_DIR"/nodes/* 2>/dev/null && continue
    printf '%s\n' "$slot"
    return
  done
  die "no free node slot"
}

# reclaim_slots EXCEPT: frees the slots of other nodes whose namespace runs nothing and
# whose kubelet (kubelet_pid= in $DPCM_TESTENV_DIR/nodes/<node>, from SimulatedNodes) is
# gone: left by a crashed test. Namespace and listing are deleted.
reclaim_slots() {
  local except="$1" file ns kubelet
  for file in "$NET_DIR"/nodes/*; do
    if [ ! -f "$file" ] || [ "$(basename "$file")" = "$except" ]; then continue; fi
    ns="$(sed -n 's/^netns=//p' "$file")"
    [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] || continue
    kubelet="$(sed -n 's/^kubelet_pid=//p' "$STATE/nodes/$(basename "$file")" 2>/dev/null)"
    [ -n "$kubelet" ] && kill -0 "$kubelet" 2>/dev/null && continue
    log "reclaiming $ns of $(basename "$file"): nothing runs in it"
    kill_namespace "$ns"
    rm -f "$file"
  done
}

cmd_add_node() {
  local node="$1" slot ns
  load_env
  mkdir -p "$NET_DIR/nodes"
  reclaim_slots "$node"
  slot="$(node_slot "$node")"
  ns="dpcm$NET_ID-n$slot"
  kill_namespace "$ns"
  ip netns add "$ns"
  veth_into "$ns" "dpcm${NET_ID}n$slot" "10.$NET_ID.0.$((10 + slot))"
  ip -n "$ns" route add local "10.$NET_ID.$((slot + 1)).0/24" dev lo
  cat >"$NET_DIR/nodes/$node" <<NODE
slot=$slot
netns=$ns
host_ip=10.$NET_ID.0.$((10 + slot))
pod_ip_base=10.$NET_ID.$((slot + 1)).0
pod_ip_count=254
NODE
  log "node $node: namespace $ns, host 10.$NET_ID.0.$((10 + slot)), pods 10.$NET_ID.$((slot + 1)).0/24"
  sed -n '2,$p' "$NET_DIR/nodes/$node"
}

node_netns() {
  [ -f "$NET_DIR/nodes/$1" ] || die "node $1 has no namespace in $STATE"
  sed -n 's/^netns=//p' "$NET_DIR/nodes/$1"
}

cmd_del_node() {
  local node="$1"
  [ -f "$NET_DIR/nodes/$node" ] || return 0
  kill_namespace "$(node_netns "$node")"
  rm -f "$NET_DIR/nodes/$node"
}

# The kube-apiserver's port (its relay on the bridge listens on the same number).
apiserver_port() { cat "$STATE/apiserver.port"; }

cmd_partition() {
  local node="$1" peers="$2" ns port
  load_env
  ns="$(node_netns "$node")"
  command -v nft >/dev/null || die "nft is missing: run hack/deps.sh"
  port="$(apiserver_port)"
  ip netns exec "$ns" nft -f - <<NFT
table inet $CHAOS_TABLE {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
NFT
  local in_rules=() out_rules=()
  case "$peers" in
    apiserver)
      in_rules=("ip saddr $BRIDGE_IP tcp sport $port drop")
      out_rules=("ip daddr $BRIDGE_IP tcp dport $port drop")
      ;;
    operator)  # everything of the root namespace but the API server's relay
      in_rules=("ip saddr $BRIDGE_IP tcp sport != $port drop" "ip saddr $BRIDGE_IP meta l4proto != tcp drop")
      out_rules=("ip daddr $BRIDGE_IP tcp dport != $port drop" "ip daddr $BRIDGE_IP meta l4proto != tcp drop")
      ;;
    clients)
      in_rules=("ip saddr 10.$NET_ID.0.2-10.$NET_ID.0.9 drop")
      out_rules=("ip daddr 10.$NET_ID.0.2-10.$NET_ID.0.9 drop")
      ;;
    all)
      in_rules=("iifname eth0 drop")
      out_rules=("oifname eth0 drop")
      ;;
    *) die "partition NODE apiserver|operator|clients|all" ;;
  esac
  local rule
  for rule in "${in_rules[@]}"; do ip netns exec "$ns" nft add rule inet "$CHAOS_TABLE" input "$rule"; done
  for rule in "${out_rules[@]}"; do ip netns exec "$ns" nft add rule inet "$CHAOS_TABLE" output "$rule"; done
  log "partition $node from $peers (namespace $ns)"
}

cmd_heal() {
  local node="$1" ns
  load_env
  ns="$(node_netns "$node")"
  ip netns exec "$ns" nft delete table inet "$CHAOS_TABLE" 2>/dev/null || true
  log "heal $node (namespace $ns): every cut removed"
}

cmd_status() {
  load_env
  log "network 10.$NET_ID.0.0/16, bridge $BRIDGE ($BRIDGE_IP), client $CLIENT_NETNS ($CLIENT_IP)"
  local file node ns
  for file in "$NET_DIR"/nodes/*; do
    [ -f "$file" ] || continue
    node="$(basename "$file")"
    ns="$(node_netns "$node")"
    log "  $node: $ns $(sed -n 's/^host_ip=//p' "$file")" \
      "$(ip netns exec "$ns" nft list table inet "$CHAOS_TABLE" 2>/dev/null | grep -c drop || true) cut rule(s)"
  done
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    sweep) cmd_sweep ;;
    add-node) [ $# -eq 1 ] || die "add-node NODE"; cmd_add_node "$1" ;;
    del-node) [ $# -eq 1 ] || die "del-node NODE"; cmd_del_node "$1" ;;
    partition) [ $# -eq 2 ] || die "partition NODE PEERS"; cmd_partition "$1" "$2" ;;
    heal) [ $# -eq 1 ] || die "heal NODE"; cmd_heal "$1" ;;
    client) load_env; exec ip netns exec "$CLIENT_NETNS" "$@" ;;
    env) load_env; cat "$NET_DIR/env" ;;
    status) cmd_status ;;
    *) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}

main "$@"
