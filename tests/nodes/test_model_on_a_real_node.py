"""ModelDeployments served by Plinth's own model server on a real node: models trained at test time and fetched
from a real S3 store in the cluster, predictions through the ingress (with tritonclient, unchanged) and through the
Service from inside the cluster, bearer tokens and rate limits enforced by the running Pods, a canary's share of
traffic measured by the version each response names, and a canary whose artifact is corrupt rolled back."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from plinth.operator import devmodels, devnode
from tritonclient.utils import InferenceServerException

from tests.conftest import Operator, wait_for
from tests.nodes.conftest import NodeCluster
from tests.prometheus import running_prometheus

pytestmark = pytest.mark.cluster
MD = "modeldeployments.plinth.dev"
ROW = [5.1, 3.5, 1.4, 0.2]  # a setosa: class 0 for every iris model here
TOKENS = {"alice": "alice-" + uuid.uuid4().hex, "bob": "bob-" + uuid.uuid4().hex}


@dataclass(frozen=True)
class Models:
    """A namespace with a model store holding iris 1.0.0 and 1.1.0, a corrupt 9.0.0 and a 3.0.0 that fails on real
    input, and a Secret of tokens."""

    namespace: str
    store_secret: str

    def uri(self, version: str) -> str:
        return f"s3://models/iris/{version}/model.joblib"


def failing_model() -> bytes:
    """An ONNX model with iris's signature that passes its warm-up (zeros) but fails on real rows: it reshapes its
    input to a length computed from the input's sum, which only zeros make right. Every real inference is a 500."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceSum", ["input"], ["total"], keepdims=0),
        helper.make_node("Cast", ["total"], ["total_int"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["total_int", "one"], ["length_minus_one"]),
        helper.make_node("Add", ["length_minus_one", "minus_one"], ["shape"]),
        helper.make_node("Reshape", ["input", "shape"], ["predict"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fails_on_real_input",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 4])],
        [helper.make_tensor_value_info("predict", TensorProto.DOUBLE, [None])],
        [
            helper.make_tensor("one", TensorProto.INT64, [1], [1]),
            helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]),
        ],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


@pytest.fixture(scope="module")
def models(node_cluster: NodeCluster) -> Iterator[Models]:
    namespace = f"ml-{uuid.uuid4().hex[:8]}"
    node_cluster.kubectl("create", "namespace", namespace)
    objects = {f"models/{key}": content for key, content in devmodels.iris_models().items()}
    objects["models/iris/9.0.0/model.joblib"] = b"this is not a joblib file"
    objects["models/iris/3.0.0/model.onnx"] = failing_model()
    secret = devnode.model_store(node_cluster.local, namespace, objects)
    literals = [f"--from-literal={name}={token}" for name, token in TOKENS.items()]
    node_cluster.kubectl("-n", namespace, "create", "secret", "generic", "iris-tokens", *literals)
    yield Models(namespace, secret)
    node_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _model_deployment(models: Models, name: str, model: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "plinth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": models.namespace},
        "spec": {
            "model": {"name": model, "version": "1.0.0", "uri": models.uri("1.0.0")},
            "runtime": {},
            "storage": {"secretRef": {"name": models.store_secret}},
            **spec,
        },
    }


def _apply(cluster: NodeCluster, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "--server-side", "--field-manager=test", "-f", "-", input=json.dumps(body))


def _get(cluster: NodeCluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get("-n", namespace, MD, name)


def _ready(cluster: NodeCluster, namespace: str, name: str, timeout: float = 240) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = _get(cluster, namespace, name)
        conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}
        ready = conditions.get("Ready", {})
        return (
            obj
            if ready.get("status") == "True" and ready.get("observedGeneration") == obj["metadata"]["generation"]
            else None
        )

    found: dict[str, Any] = wait_for(ready, timeout=timeout, what=f"ModelDeployment {namespace}/{name} Ready")
    return found


def _route(cluster: NodeCluster, namespace: str, service: str, model: str) -> None:
    """An Ingress sending /v2/models/<model>/… on the published ingress to the ModelDeployment's Service."""
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "ingressClassName": "plinth",
            "rules": [
                {
                    "http": {
                        "paths": [
                            {
                                "path": f"/v2/models/{model}",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": service, "port": {"name": "http"}}},
                            }
                        ]
                    }
                }
            ],
        },
    }
    _apply(cluster, ingress)


def _infer(cluster: NodeCluster, model: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"{cluster.ingress}/v2/models/{model}/infer", body, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode(errors="replace")


def _in_cluster_curl(cluster: NodeCluster, namespace: str, url: str, body: str, token: str) -> dict[str, Any]:
    """POST *body* to *url* from a Pod in the cluster (cluster DNS, kube-proxy, the Service), and its answer."""
    auth = f"Authorization: Bearer {token}"
    ok, output = cluster.curl(
        namespace, "--fail-with-body", "-H", auth, "-H", "Content-Type: application/json", "-d", body, url
    )
    assert ok, output
    answer: dict[str, Any] = json.loads(output)
    return answer


def test_a_model_answers_through_the_ingress_and_its_service(
    node_cluster: NodeCluster, node_operator: Operator, models: Models
) -> None:
    model = f"iris-{uuid.uuid4().hex[:6]}"
    body = _model_deployment(
        models,
        "iris",
        model,
        auth={"secretRef": {"name": "iris-tokens"}},
        rateLimit={"requestsPerSecond": 0.01, "burst": 12},
    )
    _apply(node_cluster, body)
    obj = _ready(node_cluster, models.namespace, "iris")
    assert obj["status"]["activeVersion"] == "1.0.0"
    _route(node_cluster, models.namespace, "iris", model)

    # tritonclient through the ingress on 127.0.0.1, unchanged
    address = urllib.parse.urlsplit(node_cluster.ingress).netloc
    client = triton.InferenceServerClient(url=address)
    tensor = triton.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([ROW]))
    alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
    result = wait_for(
        lambda: _triton(client, model, tensor, alice), timeout=60, what="the model to answer through the ingress"
    )
    assert result.as_numpy("predict").tolist() == [0]
    assert result.get_response()["model_version"] == "1.0.0"
    metadata = client.get_model_metadata(model, headers=alice)
    assert metadata["platform"] == "sklearn_joblib" and metadata["versions"] == ["1.0.0"]

    # the same model through its Service, from a Pod inside the cluster
    url = f"http://iris.{models.namespace}.svc.cluster.local:8080/v2/models/{model}/infer"
    inside = _in_cluster_curl(
        node_cluster,
        models.namespace,
        url,
        json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}),
        TOKENS["bob"],
    )
    assert inside["model_version"] == "1.0.0" and inside["outputs"][0]["data"] == [0]

    # bearer tokens: none is 401, an unknown one 403
    assert _infer(node_cluster, model)[0] == 401
    assert _infer(node_cluster, model, "not-a-token")[0] == 403
    # alice's bucket (12, refilled once per 100 s) runs dry; bob's is his own
    statuses = [_infer(node_cluster, model, TOKENS["alice"])[0] for _ in range(12)]
    assert statuses[-1] == 429 and set(statuses) == {200, 429}, statuses
    status, headers, _ = _infer(node_cluster, model, TOKENS["alice"])
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert _infer(node_cluster, model, TOKENS["bob"])[0] == 200


def _triton(
    client: triton.InferenceServerClient, model: str, tensor: triton.InferInput, headers: dict[str, str]
) -> Any:
    try:
        return client.infer(model, [tensor], headers=headers)
    except InferenceServerException:
        return None  # the Ingress is not routed yet


def test_a_canary_takes_its_share_and_a_corrupt_one_is_rolled_back(
    node_cluster: NodeCluster, node_operator: Operator, models: Models
) -> None:
    model = f"iris-{uuid.uuid4().hex[:6]}"
    body = _model_deployment(models, "split", model, replicas=9)
    _apply(node_cluster, body)
    _ready(node_cluster, models.namespace, "split", timeout=360)
    body["spec"]["canary"] = {"version": "1.1.0", "uri": models.uri("1.1.0"), "trafficPercent": 10}
    _apply(node_cluster, body)

    def canary_healthy() -> bool:
        canary = (_get(node_cluster, models.namespace, "split").get("status") or {}).get("canary") or {}
        return canary.get("phase") == "Healthy" and canary.get("readyReplicas") == 1

    wait_for(canary_healthy, timeout=240, what="the canary to be Healthy")
    _route(node_cluster, models.namespace, "split", model)
    wait_for(lambda: _infer(node_cluster, model)[0] == 200, timeout=60, what="the route to answer")
    versions = Counter(_infer(node_cluster, model)[1]["X-Model-Version"] for _ in range(1000))
    assert set(versions) == {"1.0.0", "1.1.0"}
    # 1 canary Pod of 10 endpoints: 10% of 1,000, within 4 standard deviations of a binomial
    tolerance = 4 * math.sqrt(1000 * 0.1 * 0.9)
    assert abs(versions["1.1.0"] - 100) <= tolerance, versions

    # a corrupt artifact: the canary's server cannot load it and exits, restarts, and the canary is rolled back
    body["spec"]["canary"] = {
        "version": "9.0.0",
        "uri": models.uri("9.0.0"),
        "trafficPercent": 10,
        "rollback": {"maxRestarts": 1},
    }
    _apply(node_cluster, body)

    def rolled_back() -> dict[str, Any] | None:
        canary = (_get(node_cluster, models.namespace, "split").get("status") or {}).get("canary") or {}
        return canary if canary.get("version") == "9.0.0" and canary.get("phase") == "RolledBack" else None

    canary = wait_for(rolled_back, timeout=300, what="the corrupt canary to be rolled back")
    assert canary["trafficPercent"] == 0
    # the stable version serves alone once the replaced canary's Pod has left the ingress's endpoints (until then a
    # request may meet the Pod being removed: the ingress's own 502, without a model version)
    wait_for(
        lambda: {_infer(node_cluster, model)[1].get("X-Model-Version") for _ in range(50)} == {"1.0.0"},
        timeout=60,
        what="only the stable version to answer",
    )


class PodTargets:
    """Prometheus's view of the annotated Pods of a namespace, scraped through the API server's Pod proxy (the host
    reaches Pods only through 127.0.0.1) and labelled with namespace and pod as the usual Kubernetes relabelling
    does. Debian's Prometheus is built without Kubernetes discovery, so the test lists the Pods into a file_sd file
    (re-read on change) as the discovery would."""

    def __init__(self, cluster: NodeCluster, namespace: str, directory: Path) -> None:
        self.cluster, self.namespace, self.file = cluster, namespace, directory / "targets.json"
        self.api = urllib.parse.urlsplit(cluster.local.server).netloc
        self.file.write_text("[]")

    def config(self) -> str:
        pki = self.cluster.local.directory / "pki"
        tls = {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "admin.crt"), "key_file": str(pki / "admin.key")}
        scrape = {
            "job_name": "pods",
            "scheme": "https",
            "tls_config": tls,
            "file_sd_configs": [{"files": [str(self.file)]}],
        }
        return json.dumps(
            {"global": {"scrape_interval": "2s", "evaluation_interval": "2s"}, "scrape_configs": [scrape]}
        )

    def refresh(self) -> None:
        targets = []
        for pod in self.cluster.get("-n", self.namespace, "pods")["items"]:
            annotations = pod["metadata"].get("annotations") or {}
            if annotations.get("prometheus.io/scrape") != "true" or pod.get("status", {}).get("phase") != "Running":
                continue
            name = pod["metadata"]["name"]
            path = f"/api/v1/namespaces/{self.namespace}/pods/{name}:{annotations['prometheus.io/port']}/proxy"
            labels = {
                "__metrics_path__": path + annotations["prometheus.io/path"],
                "namespace": self.namespace,
                "pod": name,
            }
            targets.append({"targets": [self.api], "labels": labels})
        self.file.write_text(json.dumps(targets))


@pytest.fixture
def gated_operator(
    node_cluster: NodeCluster, node_operator: Operator, models: Models, tmp_path: Path
) -> Iterator[tuple[PodTargets, str]]:
    """A real Prometheus scraping the real Pods, and the session's operator restarted to ask it."""
    targets = PodTargets(node_cluster, models.namespace, tmp_path)
    with running_prometheus(targets.config(), tmp_path) as prometheus:
        node_operator.stop()
        gated = Operator(node_cluster, tmp_path / "operator.log", env={"PLINTH_PROMETHEUS_URL": prometheus})
        try:
            yield targets, prometheus
        finally:
            gated.stop()
            node_operator.start()


def test_a_gateways_route_weights_split_a_canary(
    node_cluster: NodeCluster, node_operator: Operator, models: Models
) -> None:
    """spec.route on the node's Gateway: Traefik accepts the HTTPRoute and splits by its weights, 30% to one canary
    Pod beside one stable Pod, where the Service's endpoints alone would give it half."""
    model = f"iris-{uuid.uuid4().hex[:6]}"
    gateway = {"name": "public", "namespace": "plinth-ingress"}
    route = {"gateway": gateway, "pathPrefix": f"/v2/models/{model}"}
    body = _model_deployment(models, "weighted", model, replicas=1, route=route)
    _apply(node_cluster, body)
    _ready(node_cluster, models.namespace, "weighted")
    body["spec"]["canary"] = {"version": "1.1.0", "uri": models.uri("1.1.0"), "trafficPercent": 30}
    _apply(node_cluster, body)

    def split() -> dict[str, Any] | None:
        canary = (_get(node_cluster, models.namespace, "weighted").get("status") or {}).get("canary") or {}
        routed = canary.get("phase") == "Healthy" and canary.get("splitBy") == "HTTPRoute"
        return canary if routed and canary.get("trafficPercent") == 30 else None

    canary = wait_for(split, timeout=240, what="the canary split by the accepted HTTPRoute")
    assert canary["readyReplicas"] == 1
    parents = node_cluster.get("-n", models.namespace, "httproute", "weighted")["status"]["parents"]
    assert any(p["parentRef"]["name"] == "public" and p["controllerName"].startswith("traefik.io") for p in parents)

    def both_answer() -> bool:
        seen = {_infer(node_cluster, model)[1].get("X-Model-Version") for _ in range(20)}
        return seen == {"1.0.0", "1.1.0"}

    wait_for(both_answer, timeout=60, what="Traefik to route to both tracks")
    versions = Counter(_infer(node_cluster, model)[1]["X-Model-Version"] for _ in range(600))
    # 30% of 600 by weight, within 4 standard deviations of a binomial (the replica ratio would be 50%)
    tolerance = 4 * math.sqrt(600 * 0.3 * 0.7)
    assert abs(versions["1.1.0"] - 180) <= tolerance, versions


def test_a_canary_that_answers_errors_is_rolled_back_by_the_default_metric_gate(
    node_cluster: NodeCluster, gated_operator: tuple[PodTargets, str], models: Models
) -> None:
    targets, prometheus = gated_operator
    model = f"iris-{uuid.uuid4().hex[:6]}"
    body = _model_deployment(models, "gated", model)
    _apply(node_cluster, body)
    _ready(node_cluster, models.namespace, "gated")
    _route(node_cluster, models.namespace, "gated", model)
    wait_for(lambda: _infer(node_cluster, model)[0] == 200, timeout=60, what="the route to answer")
    # a canary with no rollback.metric: Plinth's server gets the 5xx-ratio gate because the operator has Prometheus
    body["spec"]["canary"] = {"version": "3.0.0", "uri": "s3://models/iris/3.0.0/model.onnx", "trafficPercent": 50}
    _apply(node_cluster, body)
    answered: Counter[tuple[str, int]] = Counter()

    def rolled_back_under_load() -> dict[str, Any] | None:
        targets.refresh()
        for _ in range(20):  # traffic, as clients would send it; half of it meets the canary
            status, headers, _ = _infer(node_cluster, model)
            answered[(headers.get("X-Model-Version", ""), status)] += 1
        canary = (_get(node_cluster, models.namespace, "gated").get("status") or {}).get("canary") or {}
        return canary if canary.get("phase") == "RolledBack" else None

    canary = wait_for(rolled_back_under_load, timeout=300, interval=0.5, what="the failing canary rolled back")
    assert answered[("3.0.0", 500)] > 0 and answered[("1.0.0", 200)] > 0, answered
    assert ("3.0.0", 200) not in answered
    obj = _get(node_cluster, models.namespace, "gated")
    healthy = next(c for c in obj["status"]["conditions"] if c["type"] == "CanaryHealthy")
    assert healthy["status"] == "False" and "metric gate failed" in healthy["message"], healthy
    assert obj["status"]["activeVersion"] == "1.0.0" and canary["version"] == "3.0.0"
    # what the gate read is what Prometheus scraped from the canary's own Pod (a range: the removed Pod's series
    # are marked stale, so an instant query no longer returns them)
    query = urllib.parse.quote(
        'last_over_time(plinth_serving_requests_total{version="3.0.0",code="5xx",endpoint="model_infer"}[10m])'
    )
    with urllib.request.urlopen(f"{prometheus}/api/v1/query?query={query}", timeout=10) as reply:
        series = json.loads(reply.read())["data"]["result"]
    assert series and series[0]["metric"]["namespace"] == models.namespace
