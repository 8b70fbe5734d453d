#!/usr/bin/env bash
# The chart's Grafana dashboard ConfigMap (grafanaDashboard.enabled=true) holds
# manifests/grafana/dpcm-dashboard.json verbatim under the sidecar's label, the toggle's
# default renders nothing, and the dashboard is well formed: every panel reads the
# datasource variable, ids are unique, every query filters on $job.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dashboard="$root/manifests/grafana/dpcm-dashboard.json"
helm="${DPCM_HELM:-}"
if [ -z "$helm" ]; then
  cached="${DPCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dpcm}/bin/helm"
  if [ -x "$cached" ]; then helm="$cached"; else helm=helm; fi
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

"$helm" template dpcm-operator "$root/helm/dpcm-operator" -n dpcm-system \
  --set grafanaDashboard.enabled=true --set grafanaDashboard.annotations.grafana_folder=dpcm \
  --show-only templates/grafana-dashboard.yaml >"$scratch/rendered.yaml" 2>/dev/null
grep -q '^kind: ConfigMap$' "$scratch/rendered.yaml" || fail "no ConfigMap rendered"
grep -q '^    grafana_dashboard: "1"$' "$scratch/rendered.yaml" ||
  fail "the ConfigMap lacks the label grafana_dashboard: \"1\" the Grafana sidecar looks for"
grep -q '^    grafana_folder: dpcm$' "$scratch/rendered.yaml" || fail "annotations are not rendered"
# The block under `dpcm-dashboard.json: |-`, de-indented, is the file (up to its final newline,
# which |- drops).
sed -n '/^  dpcm-dashboard.json: |-$/,$p' "$scratch/rendered.yaml" | tail -n +2 | sed 's/^    //' \
  >"$scratch/dashboard.json"
if ! diff -u <(sed -e '$a\' "$dashboard") <(sed -e '$a\' "$scratch/dashboard.json"); then
  fail "the chart's dashboard ConfigMap differs from manifests/grafana/dpcm-dashboard.json"
fi

if "$helm" template dpcm-operator "$root/helm/dpcm-operator" -n dpcm-system \
  --show-only templates/grafana-dashboard.yaml >/dev/null 2>&1; then
  fail "the dashboard ConfigMap is rendered with grafanaDashboard.enabled unset"
fi
if "$helm" template dpcm-operator "$root/helm/dpcm-operator" -n dpcm-system \
  --set grafanaDashboard.enable=true >/dev/null 2>&1; then
  fail "values.schema.json accepts the misspelt grafanaDashboard.enable"
fi

jq -e . "$dashboard" >/dev/null || fail "not JSON: $dashboard"
panels='[.panels[] | select(.type != "row")]'
[ "$(jq "$panels | length" "$dashboard")" -ge 20 ] || fail "fewer panels than expected"
jq -e "[.panels[].id] | length == (unique | length)" "$dashboard" >/dev/null ||
  fail "panel ids are not unique"
jq -e "$panels | all(.datasource.uid == \"\${datasource}\" and (.targets | length > 0))" \
  "$dashboard" >/dev/null || fail "a panel has no query or does not use the \$datasource variable"
jq -e '[.panels[] | select(.type != "row") | .targets[].expr | contains("job=~\"$job\"")] | all' \
  "$dashboard" >/dev/null || fail "a query does not select job=~\"\$job\""
echo "chart dashboard ConfigMap == manifests/grafana/dpcm-dashboard.json ($(jq "$panels | length" "$dashboard") panels)"
