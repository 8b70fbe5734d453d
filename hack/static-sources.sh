#!/usr/bin/env bash
# Fetches the Debian sources that a static dpcm-operator and dpcm-agent are built from
# (CMake option DPCM_STATIC_LINK): cpp-httplib, prometheus-cpp, spdlog and fmtlib at
# exactly the versions of the installed -dev packages, so that the code compiled into the
# static binaries matches the headers everything else compiles against. Debian ships
# these four only as shared libraries; OpenSSL, zlib, yaml-cpp and glibc come as .a files
# with their -dev packages. Idempotent: a second run fetches nothing.
#
# Usage: hack/static-sources.sh [DIR]   (default: $DPCM_CACHE/src/static, the directory
#        CMake looks in unless -DDPCM_STATIC_SOURCES=DIR says otherwise)
# Needs: deb-src entries in apt's sources and dpkg-dev (hack/deps.sh installs it).
set -euo pipefail

readonly CACHE="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}"
readonly DIR="${1:-$CACHE/src/static}"
# source package : the installed binary package whose version it must match
readonly PACKAGES=(cpp-httplib:libcpp-httplib-dev prometheus-cpp:prometheus-cpp-dev
  spdlog:libspdlog-dev fmtlib:libfmt-dev)

log() { printf '[static-sources] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$DIR"
cd "$DIR"
for entry in "${PACKAGES[@]}"; do
  source="${entry%%:*}"
  binary="${entry#*:}"
  version="$(dpkg-query -W -f='${source:Version}' "$binary" 2>/dev/null)" ||
    die "$binary is not installed (run hack/deps.sh)"
  upstream="${version#*:}"    # no epoch
  upstream="${upstream%-*}"   # no Debian revision
  unpacked="$source-$upstream"
  if [ ! -d "$unpacked" ]; then
    log "fetching $source $version"
    apt-get source -qq "$source=$version" >/dev/null 2>&1 ||
      die "apt-get source $source=$version failed (are deb-src entries configured?)"
    [ -d "$unpacked" ] || die "apt-get source did not unpack $unpacked"
  fi
  ln -sfn "$unpacked" "$source" # the stable name CMake looks for
done
log "sources in $DIR"
