#!/usr/bin/env bash
# Build Helm 3 from the Go module proxy into .cache/tools/bin (no GitHub, no get.helm.sh), once per version.
#   deploy/tools/install-helm.sh          prints the helm path; a second run with the binary present is instant
# Environment: HELM_VERSION (a v3 tag whose go.mod needs at most the local Go), GO (the go command).
# The kube version Helm assumes for .Capabilities and lint comes from the k8s.io/client-go version in Helm's
# own go.mod (v0.37.x -> 1.37), stamped in with the same -X flags as Helm's Makefile; without them a
# `go install` build claims Kubernetes 1.20.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=${HELM_VERSION:-v3.22.0}
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
bin="$root/.cache/tools/bin"
helm="$bin/helm"

if [[ -x "$helm" ]] && [[ "$("$helm" version --template '{{.Version}}' 2>/dev/null)" == "$version" ]]; then
  echo "$helm"
  exit 0
fi

export GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
# Go's own module and build caches (under $HOME) are shared by every clone, so a fresh clone rebuilds in seconds.
export GOBIN="$bin"
mkdir -p "$bin"

gomod=$("$go" mod download -json "helm.sh/helm/v3@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
client_go=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
[[ -n "$client_go" ]] || { echo "install-helm: no k8s.io/client-go requirement in $gomod" >&2; exit 1; }

echo "install-helm: building helm $version (Kubernetes 1.$client_go) with $("$go" env GOVERSION)" >&2
flags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in pkg/chartutil pkg/lint/rules; do
  flags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$client_go"
done
"$go" install -trimpath -ldflags "$flags" "helm.sh/helm/v3/cmd/helm@$version"

actual=$("$helm" version --template '{{.Version}}')
[[ "$actual" == "$version" ]] || { echo "install-helm: built $actual, wanted $version" >&2; exit 1; }
echo "$helm"
