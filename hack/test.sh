#!/usr/bin/env bash
# Builds dpcm and runs all its tests: lint, unit, and integration/e2e on a real local
# control plane (etcd + kube-apiserver, started and stopped by ctest's testenv fixture).
#
# Usage: hack/test.sh [ctest args...]     e.g. hack/test.sh -L unit
# Env:   DPCM_SKIP_LINT=1 skips clang-format/clang-tidy; BUILD_DIR (default build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BUILD_DIR="${BUILD_DIR:-build}"
step() { printf '\n==> %s\n' "$*" >&2; }

step "dependencies"
hack/deps.sh

step "kube-apiserver (built once from Debian's source, then cached)"
hack/testenv.sh build

step "sources of the static operator and agent (apt-get source: needs the deb-src entry testenv added)"
hack/static-sources.sh || printf 'static-link sources unavailable: shared link\n' >&2

step "build"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"

if [ "${DPCM_SKIP_LINT:-0}" != 1 ]; then
  step "lint"
  hack/lint.sh
fi

step "tests"
ctest --test-dir "$BUILD_DIR" --output-on-failure "$@"
