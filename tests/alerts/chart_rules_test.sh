#!/usr/bin/env bash
# The chart's PrometheusRule (prometheusRule.enabled=true) holds manifests/prometheus/dpcm-alerts.yaml
# verbatim, promtool accepts the rules it renders, and the toggle's default renders nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
helm="${DPCM_HELM:-}"
if [ -z "$helm" ]; then
  cached="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}/bin/helm"
  if [ -x "$cached" ]; then helm="$cached"; else helm=helm; fi
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

"$helm" template dpcm-operator "$root/helm/dpcm-operator" -n dpcm-system \
  --set prometheusRule.enabled=true --show-only templates/prometheusrule.yaml \
  >"$scratch/rendered.yaml" 2>/dev/null
# The spec, de-indented, is the rules file.
sed -n '/^spec:$/,$p' "$scratch/rendered.yaml" | tail -n +2 | sed 's/^  //' >"$scratch/rules.yaml"
if ! diff -u "$root/manifests/prometheus/dpcm-alerts.yaml" "$scratch/rules.yaml"; then
  echo "FAIL: the chart's PrometheusRule differs from manifests/prometheus/dpcm-alerts.yaml" >&2
  exit 1
fi
grep -q '^kind: PrometheusRule$' "$scratch/rendered.yaml"
promtool check rules "$scratch/rules.yaml"

if "$helm" template dpcm-operator "$root/helm/dpcm-operator" -n dpcm-system \
  --show-only templates/prometheusrule.yaml >/dev/null 2>&1; then
  echo "FAIL: the PrometheusRule is rendered with prometheusRule.enabled unset" >&2
  exit 1
fi
echo "chart PrometheusRule == manifests/prometheus/dpcm-alerts.yaml"
