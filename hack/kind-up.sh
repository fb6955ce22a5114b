#!/usr/bin/env bash
# For users with Docker: the same setup as `make dev`, on a kind cluster (Kubernetes 1.37, like hack/localkube).
set -euo pipefail
name=${1:-plinth}
image=${KIND_NODE_IMAGE:-kindest/node:v1.37.2}
root=$(cd "$(dirname "$0")/.." && pwd)
command -v kind >/dev/null || { echo "kind is not installed: https://kind.sigs.k8s.io/docs/user/quick-start/" >&2; exit 1; }
kind get clusters | grep -qx "$name" || kind create cluster --name "$name" --image "$image" --wait 120s
kubectl --context "kind-$name" apply --server-side -k "$root/crds"
kubectl --context "kind-$name" wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=plinth
cat <<MSG
CRDs installed on kind-$name. Run the operator against it from this checkout:
  kubectl config use-context kind-$name && .venv/bin/plinth run
Then: kubectl apply -f crds/samples/ -n default
MSG
