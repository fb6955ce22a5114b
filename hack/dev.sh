#!/usr/bin/env bash
# `make dev`, after the local control plane is up: install the CRDs, start the operator, apply the samples.
set -euo pipefail
dir=$1 bin=$2
root=$(cd "$(dirname "$0")/.." && pwd)
export KUBECONFIG=$dir/kubeconfig
kubectl=$bin/kubectl

$kubectl apply --server-side --field-manager=plinth-dev -k "$root/crds" >/dev/null
$kubectl wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=plinth >/dev/null

if [ -f "$dir/operator.pid" ] && kill -0 "$(cat "$dir/operator.pid")" 2>/dev/null; then
  echo "operator already running (pid $(cat "$dir/operator.pid"))"
else
  nohup "$bin/plinth" run --metrics-port "${PLINTH_METRICS_PORT:-8080}" >"$dir/operator.log" 2>&1 &
  echo $! >"$dir/operator.pid"
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:${PLINTH_METRICS_PORT:-8080}/healthz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$dir/operator.pid")" || { echo "the operator exited; see $dir/operator.log" >&2; exit 1; }
    sleep 0.2
  done
fi

$kubectl create namespace plinth-samples --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
$kubectl label namespace plinth-samples plinth.dev/team=shop --overwrite >/dev/null
# What the PreviewEnvironment sample refers to: a Secret to copy, and an IngressClass (no ingress controller runs
# locally, so the Ingress gets no address; the preview's URL is still computed and shown).
$kubectl -n plinth-samples create secret generic shop-db --from-literal=url=postgres://shop@db/shop \
  --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
# ... and what the ModelDeployment samples refer to: model-store credentials and a feature-store token.
$kubectl -n plinth-samples create secret generic s3-credentials --from-literal=AWS_ACCESS_KEY_ID=sample \
  --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
$kubectl -n plinth-samples create secret generic feature-store --from-literal=token=sample \
  --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
$kubectl apply -f - >/dev/null <<'YAML'
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
YAML
$kubectl apply --server-side --field-manager=plinth-dev -n plinth-samples -f "$root/crds/samples" 

cat <<MSG

Plinth is running.
  export KUBECONFIG=$KUBECONFIG
  kubectl get plinth -A                 # every Plinth resource
  kubectl get nsq                       # NamespaceQuotas and their status
  operator log: $dir/operator.log       metrics: http://127.0.0.1:${PLINTH_METRICS_PORT:-8080}/metrics
Stop everything with: make dev-down
MSG
