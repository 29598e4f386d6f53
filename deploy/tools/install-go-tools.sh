#!/usr/bin/env bash
# Build the Go command-line tools the checks use into .cache/tools/bin, pinned, from the Go module proxy:
#   helm-docs   the chart's README.md from values.yaml comments (tests/integration/test_helm_docs.py)
#   actionlint  the GitHub Actions workflows (make lint)
#   deploy/tools/install-go-tools.sh          prints nothing but progress; a second run with the pinned
#                                             versions present is instant (checked with `go version -m`)
# Environment: GO (the go command).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
bin="$root/.cache/tools/bin"
# name  module  package  version
tools=(
  "helm-docs github.com/norwoodj/helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs v1.14.2"
  "actionlint github.com/rhysd/actionlint github.com/rhysd/actionlint/cmd/actionlint v1.7.12"
)

export GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
export GOBIN="$bin"
mkdir -p "$bin"

for entry in "${tools[@]}"; do
  read -r name module package version <<<"$entry"
  if [[ -x "$bin/$name" ]] && "$go" version -m "$bin/$name" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
    continue
  fi
  echo "install-go-tools: building $name $version with $("$go" env GOVERSION)" >&2
  "$go" install -trimpath -ldflags "-s -w" "$package@$version"
done
