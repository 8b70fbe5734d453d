#!/usr/bin/env bash
# Builds and runs dpcm's images without a Docker engine or a registry, from Debian's own
# packages: mmdebstrap makes the base images, buildah builds the Dockerfiles, podman (crun)
# runs them on the host's network.
#
# Usage:
#   hack/image.sh deps                  install podman, buildah, crun, mmdebstrap (apt) if missing
#   hack/image.sh base [--refresh]      make debian:bookworm and debian:bookworm-slim locally
#   hack/image.sh build [--bin-dir DIR | --from-source]
#                                       the operator image (it holds dpcm-agent) and the sample
#                                       app's image; --bin-dir (default build/bin) packages the
#                                       host's binaries (target `prebuilt`), --from-source
#                                       compiles inside the image (the Dockerfiles' default)
#   hack/image.sh run [PODMAN-RUN-OPTIONS...] IMAGE [ARGS...]
#                                       podman run --rm --network host, with this machine's
#                                       workarounds (see below)
#   hack/image.sh smoke                 each image's binaries start from the image, find all
#                                       their shared libraries, and run as 65532
#   hack/image.sh save DIR              docker-archive tarballs of both images (kind load
#                                       image-archive, ctr images import, podman load)
#   hack/image.sh podman ARGS...        podman on this script's image store (e.g. `images`)
#   hack/image.sh names                 the two image names, one a line
#
# Env: DPCM_CACHE (~/.cache/dpcm) caches the base root filesystem; DPCM_IMAGE_STORE
#      ($DPCM_CACHE/containers) is the image store (its own, not podman's default);
#      DPCM_IMAGE_REPO (ghcr.io/dpcm) and DPCM_IMAGE_TAG (the project version) name the
#      images as manifests/ and the chart do.
#
# Why the workarounds: in sandboxes like CI's, the process lacks CAP_SYS_RESOURCE, so crun
# cannot raise RLIMIT_NOFILE/RLIMIT_NPROC to podman's defaults (the runs ask for the
# current hard limits instead, RLIMIT_NPROC no higher than pid_max, which is refused too), and cgroups are "hybrid" (v1 controllers plus a v2 mount
# at /sys/fs/cgroup/unified holding a controller), which crun refuses; the run then
# happens in a private mount namespace without that v2 mount, so crun sees plain cgroup
# v1. RUN steps of a build use buildah's chroot isolation, which needs neither.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly CACHE="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}"
readonly STORE="${DPCM_IMAGE_STORE:-$CACHE/containers}"
readonly REPO="${DPCM_IMAGE_REPO:-ghcr.io/dpcm}"
readonly TAG="${DPCM_IMAGE_TAG:-$(sed -n 's/^project(dpcm VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)}"
readonly OPERATOR_IMAGE="$REPO/dpcm-operator:$TAG"
readonly SAMPLE_APP_IMAGE="$REPO/dpcm-sample-app:$TAG"
readonly SUITE=bookworm
readonly DEB_PACKAGES=(podman buildah crun uidmap mmdebstrap)

log() { printf '[image] %s\n' "$*" >&2; }
die() {
  printf '[image] error: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

cmd_deps() {
  local pkg missing=()
  for pkg in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "Debian packages: all present"
    return
  fi
  log "Debian packages: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# podman and buildah on this script's store. overlay works on ext4/xfs; a store on a
# filesystem overlay cannot stack on can use DPCM_IMAGE_DRIVER=vfs (slower, more disk).
store_flags() {
  printf '%s\n' --root "$STORE/storage" --runroot "$STORE/run" \
    --storage-driver "${DPCM_IMAGE_DRIVER:-overlay}"
}
podman_store() {
  local flags
  mapfile -t flags < <(store_flags)
  podman "${flags[@]}" "$@"
}
buildah_store() {
  local flags
  mapfile -t flags < <(store_flags)
  buildah "${flags[@]}" "$@"
}

# The machine's Debian archives for the suite (what apt itself uses, third-party
# repositories left out), as one-line "deb URI SUITE COMPONENTS" sources for mmdebstrap.
debian_sources() {
  # shellcheck disable=SC2016 # apt's own $(FIELD) placeholders, not the shell's
  apt-get indextargets --format '$(ORIGIN)|$(REPO_URI)|$(RELEASE)|$(COMPONENT)' \
    'Created-By: Packages' |
    awk -F'|' -v suite="$SUITE" '$1 == "Debian" && ($3 == suite || index($3, suite "-") == 1) {
      components[$2 " " $3] = components[$2 " " $3] " " $4 }
      END { for (key in components) print "deb " key components[key] }' | sort
}

# One root filesystem (mmdebstrap's minbase: essential packages and apt, no docs) is
# imported as both bases; the build stage installs its compiler on top, so nothing of
# the full debian:bookworm is missing.
cmd_base() {
  local refresh=0
  [ "${1:-}" = --refresh ] && refresh=1
  local tarball="$CACHE/images/debian-$SUITE-minbase.tar"
  local -a sources
  mapfile -t sources < <(debian_sources)
  [ "${#sources[@]}" -gt 0 ] || die "no Debian $SUITE archive in apt's sources (/etc/apt)"
  if [ "$refresh" = 1 ] || [ ! -s "$tarball" ]; then
    log "base: mmdebstrap $SUITE from ${sources[*]}"
    mkdir -p "$(dirname "$tarball")"
    # merged-usr: the /usr symlinks made up front, as Debian's own images have them
    # (otherwise the usrmerge package, and perl with it, is installed).
    mmdebstrap --quiet --variant=minbase --format=tar \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --aptopt='APT::Install-Recommends "false"' \
      "$SUITE" "$tarball.tmp" "${sources[@]}" >"$tarball.log" 2>&1 ||
      { tail -n 20 "$tarball.log" >&2; die "base: mmdebstrap failed (log: $tarball.log)"; }
    mv "$tarball.tmp" "$tarball"
    refresh=1
  fi
  local name
  for name in "docker.io/library/debian:$SUITE" "docker.io/library/debian:$SUITE-slim"; do
    if [ "$refresh" = 1 ] || ! podman_store image exists "$name"; then
      log "base: importing $name"
      podman_store import --quiet "$tarball" "$name" >/dev/null
    fi
  done
}

# Copies (stripped) binaries into a fresh build context's bin/.
stage_binaries() {
  local bin_dir="$1" context="$2"
  shift 2
  mkdir -p "$context/bin"
  local name
  for name in "$@"; do
    [ -x "$bin_dir/$name" ] || die "$bin_dir/$name is missing: build it first (cmake --build build --target $name)"
    strip -o "$context/bin/$name" "$bin_dir/$name"
  done
}

bud() {
  # --layers: an unchanged apt step is reused from the store on the next build.
  BUILDAH_ISOLATION=chroot buildah_store bud --quiet --layers --pull=never "$@" >/dev/null
}

cmd_build() {
  local bin_dir=build/bin from_source=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --bin-dir) bin_dir="${2:?--bin-dir needs a directory}"; shift 2 ;;
      --from-source) from_source=1; shift ;;
      *) die "build: unknown argument $1 (see the usage atop hack/image.sh)" ;;
    esac
  done
  cmd_deps
  cmd_base
  local started=$SECONDS
  if [ "$from_source" = 1 ]; then
    log "build: $OPERATOR_IMAGE from source (target operator)"
    bud --target operator -t "$OPERATOR_IMAGE" -f Dockerfile .
    log "build: $SAMPLE_APP_IMAGE from source (target sample-app)"
    bud --target sample-app -t "$SAMPLE_APP_IMAGE" -f tests/sample-app/Dockerfile tests/sample-app
  else
    CONTEXT="$(mktemp -d)"
    trap 'rm -rf "$CONTEXT"' EXIT
    local context="$CONTEXT"
    stage_binaries "$bin_dir" "$context/operator" dpcm-operator dpcm-agent
    stage_binaries "$bin_dir" "$context/sample-app" dpcm-sample-app
    log "build: $OPERATOR_IMAGE from $bin_dir (target prebuilt)"
    bud --target prebuilt -t "$OPERATOR_IMAGE" -f Dockerfile "$context/operator"
    log "build: $SAMPLE_APP_IMAGE from $bin_dir (target prebuilt)"
    bud --target prebuilt -t "$SAMPLE_APP_IMAGE" -f tests/sample-app/Dockerfile "$context/sample-app"
  fi
  log "build: done in $((SECONDS - started)) s"
  podman_store images --filter "reference=$REPO/*" \
    --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' >&2
}

# Whether crun would refuse this machine's cgroups: v1 hierarchies with a v2 mount that
# has controllers of its own.
hybrid_cgroups_with_v2_controllers() {
  [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] &&
    [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] &&
    [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]
}

cmd_run() {
  [ $# -gt 0 ] || die "run: name an image (and podman run options before it)"
  # The caller's own hard limits (RLIMIT_NPROC at most pid_max: this sandbox refuses more).
  local nofile nproc pid_max
  nofile="$(ulimit -Hn)"
  nproc="$(ulimit -Hu)"
  pid_max="$(cat /proc/sys/kernel/pid_max)"
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc="$pid_max"; fi
  [ "$nofile" = unlimited ] && nofile=1048576
  local -a run=(run --rm --network host --pull=never
    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
  local flags
  mapfile -t flags < <(store_flags)
  if hybrid_cgroups_with_v2_controllers; then
    [ "$(id -u)" -eq 0 ] || die "run: cgroups are hybrid with v2 controllers, which crun refuses; only root can hide them (a private mount namespace)"
    # exec all the way down: the caller's pid is podman's, and its SIGTERM reaches the
    # container (podman proxies signals).
    exec unshare --mount --propagation private \
      sh -c 'umount /sys/fs/cgroup/unified && exec "$@"' sh podman "${flags[@]}" "${run[@]}" "$@"
  fi
  exec podman "${flags[@]}" "${run[@]}" "$@"
}

# Runs `hack/image.sh run ARGS` in a subshell (cmd_run execs) and prints its output.
run_in_image() { (cmd_run "$@"); }

cmd_smoke() {
  local image binary failed=0
  for image in "$OPERATOR_IMAGE" "$SAMPLE_APP_IMAGE"; do
    podman_store image exists "$image" || die "smoke: no image $image: run hack/image.sh build"
  done
  for entry in "$OPERATOR_IMAGE:dpcm-operator" "$OPERATOR_IMAGE:dpcm-agent" \
    "$SAMPLE_APP_IMAGE:dpcm-sample-app"; do
    image="${entry%:*}"
    binary="/usr/local/bin/${entry##*:}"
    local libraries user
    # ldd fails on a static executable (dpcm-operator and dpcm-agent with DPCM_STATIC_LINK):
    # that is fine, it needs no shared library.
    if ! libraries="$(run_in_image --entrypoint /usr/bin/ldd "$image" "$binary" 2>&1)"; then
      grep -q 'not a dynamic executable' <<<"$libraries" ||
        die "smoke: ldd $binary in $image failed: $libraries"
      libraries="(static)"
    fi
    if grep -q 'not found' <<<"$libraries"; then
      log "smoke: $binary in $image misses shared libraries (add their packages to the runtime stage):"
      grep 'not found' <<<"$libraries" >&2
      failed=1
    fi
    run_in_image --entrypoint "$binary" "$image" --help >/dev/null ||
      { log "smoke: $binary --help failed in $image"; failed=1; }
    user="$(run_in_image --entrypoint /usr/bin/id "$image" -u)"
    [ "$user" = 65532 ] || { log "smoke: $image runs as uid $user, not 65532"; failed=1; }
    log "smoke: $image $binary: $(grep -c '=>' <<<"$libraries") shared libraries found, --help ok, uid $user"
  done
  [ "$failed" = 0 ] || die "smoke: failed"
}

cmd_save() {
  local dir="${1:?save: name a directory}"
  mkdir -p "$dir"
  local image
  for image in "$OPERATOR_IMAGE" "$SAMPLE_APP_IMAGE"; do
    local file
    file="$dir/$(basename "${image%:*}")-$TAG.tar"
    rm -f "$file"
    podman_store save --quiet --format docker-archive -o "$file" "$image"
    log "save: $file"
  done
}

main() {
  local verb="${1:-}"
  [ $# -gt 0 ] && shift
  case "$verb" in
    deps) cmd_deps ;;
    base) cmd_base "$@" ;;
    build) cmd_build "$@" ;;
    run) cmd_run "$@" ;;
    smoke) cmd_smoke ;;
    save) cmd_save "$@" ;;
    podman) podman_store "$@" ;;
    names) printf '%s\n' "$OPERATOR_IMAGE" "$SAMPLE_APP_IMAGE" ;;
    *) die "usage: hack/image.sh deps|base|build|run|smoke|save|podman|names (see the comment atop it)" ;;
  esac
}

main "$@"
