#!/usr/bin/env bash
# Print the `replace` block go.mod needs: k8s.io/kubernetes requires its staging modules at v0.0.0 (resolved through
# ./staging replaces that do not apply to importers), so each must be pinned to the matching v0.<minor>.<patch>.
# Usage: hack/localkube/gen-replaces.sh [v1.37.2]   (paste the output over the replace block in go.mod)
set -euo pipefail
version=${1:-$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$(dirname "$0")/go.mod")}
staging=v0.${version#v1.}
gomod=$(GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
echo "replace ("
awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print "\t" $1 " => " $1 " '"$staging"'"}' "$gomod"
echo ")"
