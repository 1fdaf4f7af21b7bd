#!/usr/bin/env bash
# Build (once) the helm CLI used by the chart tests, from its Go module (the `tool` in go.mod), CGO
# disabled; and fetch the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) from its Go module,
# to validate the chart's objects of those kinds. Cached outside the repository, keyed by the release
# and this module's go.sum, so a second run reuses them. Prints the bin directory on its last line; the
# CRDs are in its sibling prometheus-operator-crds/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
release=$(grep -oE '^\s*helm\.sh/helm/v4 v[0-9.]+' "$here/go.mod" | grep -oE 'v[0-9.]+$')
promop=github.com/prometheus-operator/prometheus-operator@v0.94.0
key=$(cat "$here/go.mod" "$here/go.sum" "$0" | sha256sum | cut -c1-12)
cache=${KUBENAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenas}
bin="$cache/helm/$release-$key/bin"
crds="$cache/helm/$release-$key/prometheus-operator-crds"
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
if [ ! -x "$bin/helm" ]; then
  mkdir -p "$bin.tmp"
  start=$(date +%s)
  echo "building helm $release" >&2
  go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$release \
 -X helm.sh/helm/v4/internal/version.gitTreeState=clean" -o "$bin.tmp/helm" helm.sh/helm/v4/cmd/helm
  rm -rf "$bin" && mv "$bin.tmp" "$bin"
  echo "helm $release built in $(( $(date +%s) - start ))s" >&2
fi
if [ ! -f "$crds/monitoring.coreos.com_prometheusrules.yaml" ]; then
  echo "fetching the CRDs of $promop" >&2
  dir=$(go mod download -json "$promop" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$crds.tmp"
  cp "$dir"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$crds.tmp/"
  rm -rf "$crds" && mv "$crds.tmp" "$crds"
fi
echo "$bin"
