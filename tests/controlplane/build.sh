#!/usr/bin/env bash
# Build (once) the real Kubernetes control plane used by the cluster tests: kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl and etcd, from Go modules, CGO disabled.
# Binaries are cached outside the repository, keyed by the release and this module's go.sum,
# so a second run reuses them.  Prints the bin directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
release=$(grep -oE '^\s*(require )?k8s.io/kubernetes v[0-9.]+' "$here/go.mod" | grep -oE 'v[0-9.]+$')
key=$(cat "$here/go.mod" "$here/go.sum" "$here/etcd/main.go" "$0" | sha256sum | cut -c1-12)
cache=${KUBENAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubenas}
bin="$cache/controlplane/$release-$key/bin"
if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ] \
   && [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin.tmp"
minor=$(echo "$release" | cut -d. -f2)
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$release -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
 -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$(date +%s)
for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  echo "building $tool $release" >&2
  go build -trimpath -ldflags "$ldflags" -o "$bin.tmp/$tool" "k8s.io/kubernetes/cmd/$tool"
done
echo "building etcd" >&2
go build -trimpath -ldflags "-s -w" -o "$bin.tmp/etcd" ./etcd
rm -rf "$bin" && mv "$bin.tmp" "$bin"
echo "control plane $release built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
