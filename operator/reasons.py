"""Every condition reason Plinth writes, in one place, each with the condition it sets and what a user does about it.

Reasons are part of the API: CI steps and alerts match on them (``kubectl wait``, ``status.blockedBy.reason``), so
they are constants, never spelled out where they are used. The reasons of children (a Pod's ``ErrImagePull``, a
Gateway's ``NotAllowedByListeners``) are passed through in the child's own words; those Plinth knows are listed so
it can say whether only a change fixes them and what to do. docs/operator.md has the same table (a test keeps them
in step).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    name: str
    condition: str
    """The condition it is written on: ``Stalled`` (only a change fixes it), ``Reconciling`` (it passes by itself),
    ``Ready``, or a kind's own condition (``QuotaExceeded``, ``TotalExceeded``, ``Conflict``)."""
    fix: str

    @property
    def stalled(self) -> bool:
        return self.condition == "Stalled"


ALL: dict[str, Reason] = {}


def _reason(name: str, condition: str, fix: str) -> str:
    ALL[name] = Reason(name, condition, fix)
    return name


# -- a child's own reasons: Pods, Deployments, ResourceQuotas, Services -----------------------------------------------
ERR_IMAGE_PULL = _reason(
    "ErrImagePull", "Stalled", "check the image name and tag, and that the node may pull it (imagePullSecrets)"
)
IMAGE_PULL_BACK_OFF = _reason(
    "ImagePullBackOff", "Stalled", "check the image name and tag, and that the node may pull it (imagePullSecrets)"
)
INVALID_IMAGE_NAME = _reason("InvalidImageName", "Stalled", "fix the image reference")
CRASH_LOOP_BACK_OFF = _reason(
    "CrashLoopBackOff", "Stalled", "the container keeps exiting: read `kubectl logs --previous` of the Pod"
)
CREATE_CONTAINER_CONFIG_ERROR = _reason(
    "CreateContainerConfigError",
    "Stalled",
    "a Secret or ConfigMap (or a key of one) the container refers to is missing",
)
CREATE_CONTAINER_ERROR = _reason(
    "CreateContainerError", "Stalled", "the container cannot be created: read the message, often a bad command or mount"
)
RUN_CONTAINER_ERROR = _reason(
    "RunContainerError", "Stalled", "the container cannot start: read the message, often a bad command or mount"
)
FAILED_CREATE = _reason(
    "FailedCreate", "Stalled", "the namespace's ResourceQuota or LimitRange refuses the Pod: set resources or the quota"
)
PROGRESS_DEADLINE_EXCEEDED = _reason(
    "ProgressDeadlineExceeded", "Stalled", "the rollout stopped making progress: look at the new Pods' blockers"
)
UNSCHEDULABLE = _reason("Unschedulable", "Reconciling", "no node fits the Pod: lower resources.requests, or add nodes")
CONTAINER_CREATING = _reason(
    "ContainerCreating", "Reconciling", "the kubelet is pulling the image and starting the container"
)
POD_INITIALIZING = _reason("PodInitializing", "Reconciling", "init containers are running")
NOT_READY = _reason(
    "NotReady", "Reconciling", "the readiness probe has not passed yet: check the probe's path and port"
)
PENDING = _reason("Pending", "Reconciling", "waiting for the scheduler")
QUOTA_NOT_COUNTED = _reason(
    "QuotaNotCounted", "Reconciling", "the quota controller (kube-controller-manager) counts usage within seconds"
)
NO_ENDPOINTS = _reason(
    "NoEndpoints",
    "Reconciling",
    "the Pods are Ready but the Service lists none yet: check its selector and target port",
)
# The API server's answer to a child Plinth writes (adapters.kubernetes.Refused).
INVALID = _reason(
    "Invalid", "Stalled", "the API server refuses the child built from this spec: change the field its message names"
)
FORBIDDEN = _reason(
    "Forbidden", "Stalled", "an admission policy, quota or RBAC rule refuses the child: read the message"
)

# -- routes: an HTTPRoute's parent (Gateway) in its controller's words ----------------------------------------------
GATEWAY_API_NOT_INSTALLED = _reason(
    "GatewayAPINotInstalled", "Stalled", "install the Gateway API CRDs and an implementation, or remove the route"
)
GATEWAY_NOT_FOUND = _reason("GatewayNotFound", "Stalled", "create the Gateway, or point the route at one that exists")
NOT_ALLOWED_BY_LISTENERS = _reason(
    "NotAllowedByListeners",
    "Stalled",
    "the Gateway's listeners do not admit routes from this namespace: allowedRoutes",
)
NO_MATCHING_LISTENER_HOSTNAME = _reason(
    "NoMatchingListenerHostname", "Stalled", "no listener of the Gateway serves these host names: change either"
)
NO_MATCHING_PARENT = _reason("NoMatchingParent", "Stalled", "the Gateway has no listener the route's parentRef names")
REF_NOT_PERMITTED = _reason("RefNotPermitted", "Stalled", "a backend in another namespace needs a ReferenceGrant")
BACKEND_NOT_FOUND = _reason("BackendNotFound", "Reconciling", "a backend Service of the route does not exist yet")
ROUTE_PENDING = _reason("RoutePending", "Reconciling", "the Gateway's controller has not accepted the route yet")

# -- the owner's own reasons --------------------------------------------------------------------------------------
INVALID_SPEC = _reason("InvalidSpec", "Stalled", "fix the field the message names (the API server's schema let it in)")
RECONCILE_ERROR = _reason(
    "ReconcileError", "Reconciling", "an unexpected error, retried with back-off: the operator's log has the details"
)
NAMESPACE_TERMINATING = _reason(
    "NamespaceTerminating", "Reconciling", "the namespace is being deleted: it goes on once it is gone"
)
SECRET_NOT_FOUND = _reason("SecretNotFound", "Reconciling", "create the Secret the message names (checked every 15 s)")
ROLLOUT_IN_PROGRESS = _reason("RolloutInProgress", "Reconciling", "the Deployment is rolling out the current version")
CANARY_STARTING = _reason("CanaryStarting", "Reconciling", "the canary's Pods are starting")
CANARY_ROLLED_BACK = _reason(
    "CanaryRolledBack", "Stalled", "the canary failed its health gate and was removed: change or remove spec.canary"
)
FINALIZER_PENDING = _reason(
    "FinalizerPending", "Reconciling", "the cleanup finalizer is being added before anything is created"
)
NAMESPACE_CONFLICT = _reason(
    "NamespaceConflict",
    "Stalled",
    "a namespace of the preview's name exists and is not the preview's: rename or delete it",
)
TEAM_MISMATCH = _reason(
    "TeamMismatch", "Stalled", "spec.team must be the team the namespace is labelled for (plinth.dev/team)"
)
SECRET_COPY_REFUSED = _reason(
    "SecretCopyRefused", "Stalled", "copy only from the preview's namespace, or have the Secret's owner opt in"
)
INGRESS_CLASS_NOT_FOUND = _reason(
    "IngressClassNotFound", "Stalled", "install the ingress controller, or name an IngressClass that exists"
)
QUOTA_PENDING = _reason("QuotaPending", "Reconciling", "the NamespaceQuota is writing the namespace's limits")
SERVICES_NOT_READY = _reason("ServicesNotReady", "Reconciling", "the services' Pods are starting: see the message")
EXPIRED = _reason("Expired", "Reconciling", "the ttl has passed: the preview is being deleted")
QUOTA_REBALANCING = _reason(
    "QuotaRebalancing", "Reconciling", "usage changed while the total was being split: retried at once"
)
QUOTA_EXCEEDED = _reason(
    "QuotaExceeded", "QuotaExceeded", "the team's NamespaceQuota has no room: raise its total or free some usage"
)
USAGE_ABOVE_TOTAL = _reason(
    "UsageAboveTotal", "TotalExceeded", "usage is above spec.total.hard: new workloads are refused until it drops"
)
NAMESPACE_CLAIMED_BY_OLDER_QUOTA = _reason(
    "NamespaceClaimedByOlderQuota", "Conflict", "another NamespaceQuota selected these namespaces first: narrow either"
)
CANARY_HEALTHY = _reason("CanaryHealthy", "CanaryHealthy", "the canary passes its health gate: nothing to do")
CANARY_PROMOTED = _reason(
    "CanaryPromoted", "CanaryHealthy", "the canary became the stable version: set spec.model.version to it"
)
SERVICE_MONITOR = _reason("ServiceMonitor", "Monitored", "scraped through a ServiceMonitor: nothing to do")
SCRAPE_ANNOTATIONS = _reason(
    "ScrapeAnnotations", "Monitored", "scraped through prometheus.io/* annotations (no ServiceMonitor CRD)"
)
SECRETS_WRITTEN = _reason("SecretsWritten", "SecretsReady", "every Secret the preview names is in its namespace")
# Ready.
SERVING = _reason("Serving", "Ready", "nothing to do")
RECONCILED = _reason("Reconciled", "Ready", "nothing to do")
ASLEEP = _reason("Asleep", "Ready", "sleepAfter passed without an update: the next update wakes it")
READY = _reason("Ready", "Ready", "nothing to do")

#: Reasons that are a policy saying no (counted in plinth_policy_denials_total), not a fault.
POLICY = frozenset({SECRET_COPY_REFUSED, TEAM_MISMATCH, NAMESPACE_CONFLICT})


def stalled(name: str) -> bool:
    """Whether only a change clears *name* (an unknown reason, e.g. a new kubelet reason, is taken as progress)."""
    known = ALL.get(name)
    return known is not None and known.stalled


def fix(name: str) -> str:
    known = ALL.get(name)
    return known.fix if known is not None else ""
