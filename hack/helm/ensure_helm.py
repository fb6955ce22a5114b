"""Build helm from the Go module in this folder once (cached in ~/.cache/plinth/helm/<key>/helm) and print its path.

Helm comes from the Go module proxy like everything else the project builds, through the same cached, locked build
as the local control plane (plinth.operator.devcluster.ensure_go_binary), so `make test` needs no extra step and no
download from anywhere but the registries. The go.mod pins helm and aligns the modules it shares with
hack/localkube, so a fresh machine reuses most of the control plane's compiled packages.

Usage: python hack/helm/ensure_helm.py   (PYTHONSAFEPATH=1, from the repository's virtualenv)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from plinth.operator import devcluster

MODULE = Path(__file__).resolve().parent
HELM_PACKAGE = "helm.sh/helm/v3"


def _required(module: str) -> str:
    """The version go.mod requires for *module* (what the build links, replace directives aside)."""
    match = re.search(rf"^\s*{re.escape(module)} (v\S+)", (MODULE / "go.mod").read_text(), re.MULTILINE)
    if not match:
        raise devcluster.ClusterError(f"{MODULE / 'go.mod'} does not require {module}")
    return match.group(1)


def ensure_helm(log: bool = True) -> Path:
    """The helm binary, built on first use. Its version and default Kubernetes version are stamped the way helm's
    own Makefile does, so `helm version` is truthful and `helm lint`/`template` assume Kubernetes 1.<client-go
    minor>, the control plane's minor."""
    helm_version = _required("helm.sh/helm/v3")
    kube_minor = _required("k8s.io/client-go").split(".")[1]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X {HELM_PACKAGE}/internal/version.version={helm_version}",
            f"-X {HELM_PACKAGE}/internal/version.gitTreeState=clean",
            f"-X {HELM_PACKAGE}/pkg/lint/rules.k8sVersionMajor=1",
            f"-X {HELM_PACKAGE}/pkg/lint/rules.k8sVersionMinor={kube_minor}",
            f"-X {HELM_PACKAGE}/pkg/chartutil.k8sVersionMajor=1",
            f"-X {HELM_PACKAGE}/pkg/chartutil.k8sVersionMinor={kube_minor}",
        ]
    )
    return devcluster.ensure_go_binary(
        MODULE, "helm", package=f"{HELM_PACKAGE}/cmd/helm", ldflags=ldflags, what=f"helm {helm_version}", log=log
    )


if __name__ == "__main__":
    try:
        print(ensure_helm())
    except devcluster.ClusterError as err:
        sys.exit(f"error: {err}")
