#!/usr/bin/env bash
# `make dev`, after the local control plane is up with its real node: install the CRDs, start the operator, run a
# model store with the sample models, apply the samples and wait until they are Ready.
set -euo pipefail
dir=$1 bin=$2 name=$3
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
# What the samples refer to: the model store (in a namespace of its own, which the samples' DefaultDeny policy does
# not isolate) and its credentials (Secret model-store), a database Secret for the preview to copy, and the bearer
# tokens of the canary sample (one generated token, key `sample`).
"$bin/plinth" cluster model-store --name "$name" --dir "$dir" --namespace plinth-model-store \
  --reader plinth-samples >/dev/null
$kubectl -n plinth-samples create secret generic shop-db --from-literal=url=postgres://shop@db/shop \
  --dry-run=client -o yaml | $kubectl apply -f - >/dev/null
if ! $kubectl -n plinth-samples get secret iris-tokens >/dev/null 2>&1; then
  $kubectl -n plinth-samples create secret generic iris-tokens \
    --from-literal=sample="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >/dev/null
fi
$kubectl apply --server-side --field-manager=plinth-dev -n plinth-samples -f "$root/crds/samples" >/dev/null
# The sample model on the ingress (127.0.0.1): /v2/models/iris/... goes to the iris ModelDeployment's Service.
$kubectl apply --server-side --field-manager=plinth-dev -f - >/dev/null <<'YAML'
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: iris
  namespace: plinth-samples
spec:
  ingressClassName: plinth
  rules:
    - http:
        paths:
          - path: /v2/models/iris
            pathType: Prefix
            backend:
              service: {name: iris, port: {name: http}}
YAML
$kubectl wait --for=condition=Ready --timeout="${PLINTH_DEV_TIMEOUT:-600s}" -n plinth-samples \
  modeldeployments,previewenvironments --all >/dev/null
$kubectl wait --for=condition=Ready --timeout=120s namespacequotas --all >/dev/null
eval "$("$bin/plinth" cluster env --name "$name" --dir "$dir")"
ingress=$PLINTH_INGRESS

cat <<MSG

Plinth is running, with every sample Ready.
  export KUBECONFIG=$KUBECONFIG
  kubectl get plinth -A                 # every Plinth resource
  kubectl get nsq                       # NamespaceQuotas and their status

The sample model answers on the ingress:
  curl -s $ingress/v2/models/iris/infer -H 'Content-Type: application/json' \\
    -d '{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}'
The preview of pull request 1234:
  curl -s -H 'Host: shop-1234.preview.localhost' $ingress/

  operator log: $dir/operator.log       metrics: http://127.0.0.1:${PLINTH_METRICS_PORT:-8080}/metrics
Stop everything with: make dev-down
MSG
