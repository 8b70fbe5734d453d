#!/usr/bin/env bash
# Checks formatting (clang-format) and runs clang-tidy on pkg/ and cmd/; any finding fails.
# Needs a configured build directory for compile_commands.json (BUILD_DIR, default build).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
readonly BUILD_DIR="${BUILD_DIR:-build}"

mapfile -t sources < <(git ls-files -co --exclude-standard -- 'pkg/*.cpp' 'pkg/*.h' 'cmd/*.cpp' \
  'cmd/*.h' 'tests/*.cpp' 'tests/*.h')
echo "[lint] clang-format on ${#sources[@]} files" >&2
clang-format --dry-run --Werror "${sources[@]}"

mapfile -t tidy_sources < <(git ls-files -co --exclude-standard -- 'pkg/*.cpp' 'cmd/*.cpp')
[ -f "$BUILD_DIR/compile_commands.json" ] || { echo "[lint] configure $BUILD_DIR first" >&2; exit 1; }
echo "[lint] clang-tidy on ${#tidy_sources[@]} files" >&2
printf '%s\n' "${tidy_sources[@]}" |
  xargs -P "$(nproc)" -n 1 clang-tidy -p "$BUILD_DIR" --quiet 2> >(grep -v "warnings generated" >&2)
echo "[lint] clean" >&2
