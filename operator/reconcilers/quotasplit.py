"""Race-free aggregate limits: split ``total.hard`` into per-namespace ResourceQuota hard limits.

Kubernetes' quota admission enforces each ResourceQuota atomically (compare-and-swap on its usage), but knows nothing
about a sum across namespaces. So Plinth never lets the per-namespace hard limits sum to more than the total: every
namespace may use what it already uses plus its share of what is still free. Pods created at the same moment in
several namespaces are then each checked by the API server against a limit that already accounts for the others.

The split (per resource in ``total.hard``):
1. ``free = total - sum(used)``; when negative nothing is free (``TotalExceeded``) and every namespace is held at
   its current usage, so usage can only shrink.
2. ``free`` is shared equally (water-filling): a namespace never gets more than its ``perNamespace`` headroom, and
   what it cannot take is shared among the others. Shares are floored to the resource's unit (milli for cpu, whole
   units otherwise), so the sum stays ≤ total; left-over units go one each to the least-allocated namespaces.
3. allocation = used + share.
Namespaces that declare what they will run (preview namespaces, ``requested``) are granted it whole before step 2,
while it fits: a preview is provisioned completely or not at all, never with half its pods. Those whose current
limits already cover their request (``held``) come first: a preview checks its namespace's limits once, before its
first workload, and a rebalance must not hand that room to a namespace that appeared since.
Trade-offs: a busy namespace cannot grow beyond its share until the next rebalance, which runs on every quota usage
change; a namespace whose ResourceQuota does not exist yet is unlimited until Plinth creates it (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal

from plinth.operator.api.v1alpha1 import parse_quantity


def unit(resource: str) -> Decimal:
    """The smallest step a share is rounded to: millicores for cpu, whole units (bytes, counts) otherwise."""
    return Decimal("0.001") if "cpu" in resource else Decimal(1)


def format_amount(value: Decimal, resource: str) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int((value * 1000).to_integral_value(rounding=ROUND_FLOOR))}m"


def split_total(
    total: Mapping[str, str],
    per_namespace: Mapping[str, str],
    used: Mapping[str, Mapping[str, str]],
    namespaces: Sequence[str],
    requested: Mapping[str, Mapping[str, str]] | None = None,
    *,
    held: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Per-namespace hard limits for every resource in *total*, and the resources whose usage exceeds the total.

    *used* maps namespace -> resource -> quantity (missing means 0). The result maps namespace -> resource -> hard.
    *requested* maps namespace -> what it declared it will run (a PreviewEnvironment's ``plinth.dev/quota-request``):
    such a namespace is first granted all of its request or none of it (by name order, while it fits), so a preview
    either gets room for every workload or reports QuotaExceeded; the rest of the free room is then shared. *held*
    maps namespace -> its current hard limits: namespaces whose limits cover their request keep it, before any other
    request is granted.
    """
    names = sorted(namespaces)
    allocation: dict[str, dict[str, str]] = {ns: {} for ns in names}
    exceeded: list[str] = []
    if not names:
        return allocation, exceeded
    limits = {res: parse_quantity(text) for res, text in total.items()}
    caps = {res: parse_quantity(per_namespace[res]) for res in total if res in per_namespace}
    usage = {ns: {res: parse_quantity(used.get(ns, {}).get(res, "0")) for res in total} for ns in names}
    free: dict[str, Decimal] = {}
    for res, limit in limits.items():
        free[res] = limit - sum((usage[ns][res] for ns in names), Decimal(0))
        if free[res] < 0:
            exceeded.append(res)
            free[res] = Decimal(0)
    base = {ns: dict(usage[ns]) for ns in names}
    wanted = {
        ns: {res: parse_quantity(v) for res, v in (requested or {}).get(ns, {}).items() if res in limits}
        for ns in names
    }

    def holds(ns: str) -> bool:
        hard = (held or {}).get(ns, {})
        return bool(wanted[ns]) and all(
            res in hard and parse_quantity(hard[res]) >= amount for res, amount in wanted[ns].items()
        )

    for ns in sorted(names, key=lambda ns: (not holds(ns), ns)):
        wants = wanted[ns]
        need = {res: max(amount - usage[ns][res], Decimal(0)) for res, amount in wants.items()}
        fits = all(n <= free[res] and (res not in caps or usage[ns][res] + n <= caps[res]) for res, n in need.items())
        if need and fits:
            for res, n in need.items():
                free[res] -= n
                base[ns][res] += n
    for res in sorted(limits):
        cap = caps.get(res)
        headroom = {ns: (max(cap - base[ns][res], Decimal(0)) if cap is not None else None) for ns in names}
        share = _water_fill(free[res], headroom, unit(res), {ns: base[ns][res] for ns in names})
        for ns in names:
            allocation[ns][res] = format_amount(base[ns][res] + share[ns], res)
    return allocation, sorted(exceeded)


def _water_fill(
    free: Decimal, headroom: Mapping[str, Decimal | None], step: Decimal, base: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Share *free* equally in multiples of *step*, never above a namespace's headroom (None: unbounded).

    Units left over after equal parts go one each to the namespaces with the smallest allocation (then by name), so
    an empty namespace can start even when nearly everything is in use elsewhere.
    """
    share = {ns: Decimal(0) for ns in headroom}

    def neediest(candidates: list[str]) -> list[str]:
        return sorted(candidates, key=lambda ns: (base[ns] + share[ns], ns))

    units = int((free / step).to_integral_value(rounding=ROUND_FLOOR))
    open_ns = [ns for ns in sorted(headroom) if headroom[ns] is None or (headroom[ns] or 0) >= step]
    while units > 0 and open_ns:
        each = units // len(open_ns)
        if each == 0:  # fewer units than namespaces: one each, smallest allocation first
            for ns in neediest(open_ns)[:units]:
                share[ns] += step
            break
        still_open = []
        for ns in open_ns:
            room = headroom[ns]
            grant = each if room is None else min(each, int(((room - share[ns]) / step).to_integral_value(ROUND_FLOOR)))
            share[ns] += grant * step
            units -= grant
            if room is None or room - share[ns] >= step:
                still_open.append(ns)
        if len(still_open) == len(open_ns) and all(headroom[ns] is None for ns in open_ns):
            # Unbounded namespaces took equal parts; hand out the remainder and stop.
            for ns in neediest(still_open)[:units]:
                share[ns] += step
            break
        open_ns = still_open
    return share
