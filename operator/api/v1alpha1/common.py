"""Building blocks shared by every Plinth kind.

The pydantic models in this package are the single source of the CRD schemas (see ``plinth.operator.api.crdgen``):
field descriptions become what ``kubectl explain`` prints, constraints become OpenAPI validation, and the
``x-kubernetes-validations`` attached here become CEL rules evaluated by the API server. Cross-field CEL rules are
mirrored by pydantic validators so the operator rejects the same objects when it parses them (never more).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "DNS1035_LABEL_PATTERN",
    "DNS1123_LABEL_PATTERN",
    "DNS1123_SUBDOMAIN_PATTERN",
    "DURATION_PATTERN",
    "MAX_CONDITIONS",
    "MAX_QUANTITY_LENGTH",
    "MAX_RESOURCES",
    "QUANTITY_PATTERN",
    "RESOURCE_QUANTITY_PATTERN",
    "SEMVER_PATTERN",
    "ApiModel",
    "BlockedBy",
    "Condition",
    "ConditionStatus",
    "DNS1035Label",
    "DNS1123Label",
    "DNS1123Subdomain",
    "Duration",
    "GatewayRef",
    "LabelSelector",
    "LabelSelectorRequirement",
    "LocalObjectReference",
    "PositiveDuration",
    "Quantity",
    "ResourceList",
    "StatusBase",
    "Time",
    "UniqueStrings",
    "cel",
    "format_time",
    "list_map",
    "list_set",
    "named",
    "parse_duration",
    "parse_quantity",
    "parse_time",
    "quantity_exceeds",
    "quantity_rule",
    "unique_by",
    "validations",
]

# --------------------------------------------------------------------------------------------------------------------
# Patterns (RE2-compatible: the API server evaluates them with Go's regexp, pydantic with Rust's regex crate).
# --------------------------------------------------------------------------------------------------------------------

#: Kubernetes resource quantity, verbatim from the OpenAPI schema of core/v1 ResourceQuota (``spec.hard``).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
#: The quantities Plinth's fields take: amounts of a resource, so never negative.
RESOURCE_QUANTITY_PATTERN = QUANTITY_PATTERN.replace(r"^(\+|-)?", r"^\+?", 1)
#: RFC 1123 label: namespace names, label-like names.
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: RFC 1035 label: Service names must start with a letter.
DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
#: RFC 1123 subdomain: names of most Kubernetes objects (Secrets, ...), DNS domains.
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: Semantic Versioning 2.0.0 (https://semver.org), without the leading "v".
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-((0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$"
)
#: Go ``time.ParseDuration`` syntax restricted to non-negative values, as metav1.Duration fields are documented.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"

_CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
_LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

#: Upper bounds that keep the CEL cost estimates of the API server within budget.
MAX_RESOURCES = 32
MAX_CONDITIONS = 16
MAX_QUANTITY_LENGTH = 64

# --------------------------------------------------------------------------------------------------------------------
# CEL helpers: plain dicts in the shape of apiextensions.k8s.io/v1 ValidationRule, so crdgen copies them verbatim.
# --------------------------------------------------------------------------------------------------------------------

CelReason = Literal["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"]


def cel(rule: str, message: str, *, field_path: str | None = None, reason: CelReason | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry; ``field_path`` is relative to the node carrying the rule."""
    out = {"rule": rule, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    if reason is not None:
        out["reason"] = reason
    return out


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """JSON-schema extra carrying CEL rules, for ``Field(json_schema_extra=...)`` or ``ConfigDict``."""
    return {"x-kubernetes-validations": list(rules)}


def list_map(*keys: str) -> dict[str, Any]:
    """A list merged by key by server-side apply (and whose keys the API server keeps unique)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def list_set() -> dict[str, Any]:
    """A list of unique scalars, merged as a set by server-side apply."""
    return {"x-kubernetes-list-type": "set"}


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_T = TypeVar("_T")


def unique_by(key: Callable[[_T], object], what: str) -> AfterValidator:
    """Pydantic mirror of a list-type map: duplicate keys are an error, as on the API server."""

    def check(items: Sequence[_T] | None) -> Sequence[_T] | None:
        if items is None:
            return items
        seen: set[object] = set()
        for item in items:
            k = key(item)
            if k in seen:
                raise ValueError(f"duplicate {what} {k!r}")
            seen.add(k)
        return items

    return AfterValidator(check)


def _unique_scalars(items: list[str] | None) -> list[str] | None:
    if items is not None and len(set(items)) != len(items):
        raise ValueError("duplicate entries are not allowed")
    return items


UniqueStrings = AfterValidator(_unique_scalars)

# --------------------------------------------------------------------------------------------------------------------
# Scalar types
# --------------------------------------------------------------------------------------------------------------------

DNS1123Label = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS1123_LABEL_PATTERN)]
DNS1035Label = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS1035_LABEL_PATTERN)]
DNS1123Subdomain = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)]
Duration = Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=DURATION_PATTERN)]
_POSITIVE_DURATION = "must be longer than 0s"


def _positive_duration(value: str) -> str:
    if parse_duration(value) <= 0:
        raise ValueError(_POSITIVE_DURATION)
    return value


#: A Go duration that must not be zero (a timeout, a time to live): 0s would act at once.
PositiveDuration = Annotated[
    Duration,
    AfterValidator(_positive_duration),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 2,
            "maxLength": 64,
            "pattern": DURATION_PATTERN,
            **validations(cel("duration(self) > duration('0s')", _POSITIVE_DURATION)),
        }
    ),
]

_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: str) -> float:
    """Seconds in a Go duration string such as ``72h`` or ``1h30m`` (the syntax the schema accepts)."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration such as 30m, 72h or 1h30m")
    return float(sum(Decimal(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value)))


def _check_time(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp such as 2025-01-31T12:00:00Z") from None
    return value


#: RFC 3339 timestamp kept as the string the API server stores (``format: date-time``).
Time = Annotated[str, AfterValidator(_check_time), WithJsonSchema({"type": "string", "format": "date-time"})]


def parse_time(value: str) -> datetime:
    """An RFC 3339 time as Kubernetes writes it (``2025-01-31T12:00:00Z``), the inverse of ``format_time``."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(moment: datetime | None = None) -> str:
    """``moment`` (default: now) as the RFC 3339 UTC string Kubernetes writes, e.g. ``2025-01-31T12:00:00Z``."""
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------------------------
# Quantities
# --------------------------------------------------------------------------------------------------------------------

_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
_SUFFIX = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_MULTIPLIERS = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(value: str | int) -> Decimal:
    """Exact numeric value of a Kubernetes quantity (``500m`` -> 0.5, ``1Gi`` -> 1073741824), for comparisons/sums."""
    text = str(value)
    match = _SUFFIX.match(text)
    if isinstance(value, bool) or not _QUANTITY_RE.match(text) or match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 1.5 or 512Mi")
    number, suffix = match.groups()
    try:
        if suffix[:1] in ("e", "E"):
            exponent = Decimal(suffix[1:])
            if exponent != exponent.to_integral_value():
                raise ValueError(f"{value!r}: the exponent of a quantity must be an integer")
            return Decimal(number).scaleb(int(exponent))
        return Decimal(number) * _MULTIPLIERS[suffix]
    except (InvalidOperation, KeyError):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 1.5 or 512Mi") from None


def _coerce_quantity(value: object) -> object:
    # Integers are valid on the wire (int-or-string); floats and booleans are not (the API server rejects them too).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    if parse_quantity(value) < 0:
        raise ValueError(f"{value!r}: a resource amount cannot be negative")
    return value


#: A Kubernetes resource quantity (``2``, ``500m``, ``1.5``, ``512Mi``), not negative: integer or string on the wire,
#: ``str`` here.
Quantity = Annotated[
    str,
    BeforeValidator(_coerce_quantity),
    StringConstraints(strict=True, max_length=MAX_QUANTITY_LENGTH),
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": RESOURCE_QUANTITY_PATTERN,
            "minimum": 0,  # for the integer form; the pattern has no minus sign for the string form
            # Not in ResourceQuota's schema, but without it the API server estimates CEL rules reading quantities
            # as if each could be as long as a whole request, and rejects the CRD ("rule cost exceeds budget").
            "maxLength": MAX_QUANTITY_LENGTH,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

#: A qualified name, as resource names and label keys are: ``cpu``, ``requests.memory``, ``nvidia.com/gpu``,
#: ``plinth.dev/team``.
RESOURCE_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_RESOURCE_NAME_RE = re.compile(RESOURCE_NAME_PATTERN)
_RESOURCE_NAMES = "resource names are qualified names such as cpu, requests.memory or nvidia.com/gpu"


def _resource_names(value: dict[str, str]) -> dict[str, str]:
    bad = sorted(k for k in value if len(k) > 253 or not _RESOURCE_NAME_RE.match(k))
    if bad:
        raise ValueError(f"{_RESOURCE_NAMES}; not: {', '.join(repr(k[:64]) for k in bad[:3])}")
    return value


#: Resource name (``cpu``, ``memory``, ``requests.cpu``, ``nvidia.com/gpu``...) -> quantity.
ResourceList = Annotated[
    dict[str, Quantity],
    AfterValidator(_resource_names),
    Field(
        max_length=MAX_RESOURCES,
        json_schema_extra={
            "maxProperties": MAX_RESOURCES,
            **validations(
                cel(f"self.all(k, size(k) <= 253 && k.matches(r'{RESOURCE_NAME_PATTERN}'))", _RESOURCE_NAMES)
            ),
        },
    ),
]


def quantity_exceeds(small: dict[str, str] | None, large: dict[str, str] | None) -> list[str]:
    """Keys present in both lists where ``small`` is greater than ``large`` (mirror of the CEL quantity rules)."""
    if not small or not large:
        return []
    return sorted(k for k in small if k in large and parse_quantity(small[k]) > parse_quantity(large[k]))


def quantity_rule(small: str, large: str) -> str:
    """CEL: for every resource present in both maps, ``small[k] <= large[k]`` (cost-bounded by MAX_RESOURCES).

    ``isQuantity`` guards keep a malformed value (reported by the schema pattern) from failing the rule itself.
    """
    a, b = f"self.{small}", f"self.{large}"
    return (
        f"!has({a}) || !has({b}) || {a}.all(k, !(k in {b}) || !isQuantity(string({a}[k])) || "
        f"!isQuantity(string({b}[k])) || quantity(string({a}[k])).compareTo(quantity(string({b}[k]))) <= 0)"
    )


# --------------------------------------------------------------------------------------------------------------------
# Base model
# --------------------------------------------------------------------------------------------------------------------


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields rejected, every field documented."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=False,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # `kubectl explain` users depend on these texts: refuse to define an undocumented type or field.
        super().__pydantic_init_subclass__(**kwargs)
        if not (cls.__doc__ or "").strip():
            raise TypeError(f"{cls.__name__} needs a docstring: it becomes the schema description of the type")
        missing = [name for name, info in cls.model_fields.items() if not (info.description or "").strip()]
        if missing:
            raise TypeError(f"{cls.__name__}: fields without a description: {', '.join(missing)}")

    def to_dict(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase keys, JSON types, unset optional fields omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------------------------------------------------
# Common API types
# --------------------------------------------------------------------------------------------------------------------


class LabelSelectorRequirement(ApiModel):
    """A label requirement: a key, an operator and (for In/NotIn) a list of values."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)",
                "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",
                field_path=".values",
            )
        )
    )

    key: Annotated[str, StringConstraints(min_length=1, max_length=317, pattern=_LABEL_KEY_PATTERN)] = Field(
        description="The label key the requirement applies to, e.g. plinth.dev/team."
    )
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description=(
            "How the label value is tested. In: the value is one of `values`. NotIn: the label is absent or its "
            "value is not one of `values`. Exists: the label is present. DoesNotExist: the label is absent."
        )
    )
    values: list[Annotated[str, StringConstraints(max_length=63, pattern=_LABEL_VALUE_PATTERN)]] | None = Field(
        default=None,
        max_length=64,
        description="Label values compared with In and NotIn. Must be empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError("values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist")
        return self


class LabelSelector(ApiModel):
    """A label query over objects. All of matchLabels and matchExpressions must match (they are ANDed)."""

    match_labels: dict[str, Annotated[str, StringConstraints(max_length=63, pattern=_LABEL_VALUE_PATTERN)]] | None = (
        Field(
            default=None,
            max_length=64,
            description="Labels that must all be present with exactly these values.",
            json_schema_extra={
                "maxProperties": 64,
                **validations(
                    cel(
                        f"self.all(k, size(k) <= 253 && k.matches(r'{RESOURCE_NAME_PATTERN}'))",
                        "label keys are qualified names such as team or plinth.dev/team",
                    )
                ),
            },
        )
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None,
        max_length=32,
        description="Label requirements that must all be satisfied.",
    )

    @model_validator(mode="after")
    def _qualified_keys(self) -> LabelSelector:
        bad = [k for k in self.match_labels or {} if len(k) > 253 or not _RESOURCE_NAME_RE.match(k)]
        if bad:
            raise ValueError("label keys are qualified names such as team or plinth.dev/team")
        return self

    def is_empty(self) -> bool:
        """An empty selector matches every object, which is never what a quota wants."""
        return not self.match_labels and not self.match_expressions


class LocalObjectReference(ApiModel):
    """A reference to an object by name in the same namespace."""

    name: DNS1123Subdomain = Field(description="Name of the referenced object, in the same namespace.")


ConditionStatus = Literal["True", "False", "Unknown"]


class GatewayRef(ApiModel):
    """A Gateway API Gateway that Plinth's HTTPRoutes attach to."""

    name: DNS1123Subdomain = Field(description="Name of the Gateway.")
    namespace: DNS1123Label = Field(
        description="Namespace of the Gateway; its listeners must allow routes from the route's namespace."
    )


class Condition(ApiModel):
    """One aspect of the object's current state (kstatus conventions: Ready, Reconciling, Stalled, ...)."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316, pattern=_CONDITION_TYPE_PATTERN)] = Field(
        description=(
            "Type of condition in CamelCase: Ready, Reconciling, Stalled, or a domain condition such as "
            "QuotaExceeded, SecretsReady or CanaryHealthy."
        )
    )
    status: ConditionStatus = Field(description="Whether the condition holds: True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description=(
            "The metadata.generation the condition was computed for. Older than metadata.generation means the "
            "condition is out of date."
        ),
    )
    last_transition_time: Time = Field(
        description="When the condition last changed status (RFC 3339), not when it was last checked."
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=_CONDITION_REASON_PATTERN)] = Field(
        description="Machine-readable CamelCase reason for the last transition, e.g. ProgressingRollout."
    )
    message: Annotated[str, StringConstraints(max_length=32768)] = Field(
        default="",
        description="Human-readable details: what blocks progress and on which child object.",
    )


class BlockedBy(ApiModel):
    """The child that keeps the object from being Ready, in its own words (never a Secret's value)."""

    kind: Annotated[str, StringConstraints(max_length=63)] = Field(description="Kind of the child, e.g. Pod.")
    name: Annotated[str, StringConstraints(max_length=253)] = Field(description="Name of the child.")
    reason: Annotated[str, StringConstraints(max_length=128)] = Field(
        description="The child's own reason, e.g. ImagePullBackOff, FailedCreate, NotReady, RoutePending."
    )
    message: Annotated[str, StringConstraints(max_length=1024)] = Field(
        default="", description="The child's own message (from the kubelet, a controller or the API server)."
    )
    since: Time | None = Field(default=None, description="Since when the child says so, when it says (RFC 3339).")


class StatusBase(ApiModel):
    """Fields every Plinth status carries."""

    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description=(
            "The metadata.generation the operator last processed. While it is lower than metadata.generation the "
            "rest of the status describes an older spec."
        ),
    )
    conditions: Annotated[list[Condition], unique_by(lambda c: c.type, "condition type")] = Field(
        default_factory=list,
        max_length=MAX_CONDITIONS,
        description=(
            "Current state of the object. Ready is always present and summarises the others; Reconciling=True "
            "while changes are being applied; Stalled=True when a user must fix something."
        ),
        json_schema_extra=list_map("type"),
    )
    blocked_by: BlockedBy | None = Field(
        default=None,
        description=(
            "While not Ready because of one child (a Pod, a Deployment, a route): which, and its own reason; unset "
            "otherwise. Each change of it is one Event on the object."
        ),
    )
    last_reconcile_lag_seconds: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Seconds from the operator first seeing the latest generation to it being Ready: the end-to-end "
            "reconciliation lag of the last change (also exported as the plinth_reconcile_lag_seconds histogram)."
        ),
    )

    def condition(self, type_: str) -> Condition | None:
        """The condition of this type, if present."""
        return next((c for c in self.conditions if c.type == type_), None)


def named(what: str) -> AfterValidator:
    """List-type map keyed by ``name``: mirror of the API server's duplicate check."""

    def key(item: _Named) -> str:
        return item.name

    return unique_by(key, what)
