"""ModelDeployment handlers: its own changes and its Deployments' events (``register``, from its descriptor), and the
Warning Events about its Pods. Resyncs, retries and canary checks come from the operator-wide schedule (schedule.py)
as its ``timing`` asks. No delete handler and so no finalizer: children are owned and garbage-collected."""

from __future__ import annotations

from typing import Any

import kopf
from plinth.operator.builders import model
from plinth.operator.handlers.common import register, wake_not_ready, warned_pod
from plinth.operator.kinds import POD_WARNINGS
from plinth.operator.reconcilers import modeldeployment
from plinth.operator.services import Services

SCHEDULED = register(modeldeployment.KIND)
INDEX = SCHEDULED.index


@kopf.on.event(*POD_WARNINGS, id="pod-warning-modeldeployment")
async def pod_warned(type: str, body: kopf.Body, memo: Services, **_: Any) -> None:
    """A kubelet's Warning about a Pod of a model's Deployment (``<deployment>-<hash>-<id>``; the canary's is
    ``<name>-canary``): what the Deployment's counts do not show (a bad image, a crash loop) reaches the model now."""
    if (pod := warned_pod(type, body)) is None:
        return
    namespace, name = pod
    deployment = name.rsplit("-", 2)[0]
    for owner in {deployment, deployment.removesuffix(f"-{model.CANARY_TRACK}")}:
        wake_not_ready(SCHEDULED, INDEX.under(f"{namespace}/{owner}"), memo)
