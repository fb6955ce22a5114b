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
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Per-namespace hard limits for every resource in *total*, and the resources whose usage exceeds the total.

    *used* maps namespace -> resource -> quantity (missing means 0). The result maps namespace -> resource -> hard.
    """
    names = sorted(namespaces)
    allocation: dict[str, dict[str, str]] = {ns: {} for ns in names}
    exceeded: list[str] = []
    if not names:
        return allocation, exceeded
    for resource, total_text in sorted(total.items()):
        step = unit(resource)
        limit = parse_quantity(total_text)
        usage = {ns: parse_quantity(used.get(ns, {}).get(resource, "0")) for ns in names}
        cap = parse_quantity(per_namespace[resource]) if resource in per_namespace else None
        free = limit - sum(usage.values(), Decimal(0))
        if free < 0:
            exceeded.append(resource)
            free = Decimal(0)
        headroom = {ns: (max(cap - usage[ns], Decimal(0)) if cap is not None else None) for ns in names}
        share = _water_fill(free, headroom, step, usage)
        for ns in names:
            allocation[ns][resource] = format_amount(usage[ns] + share[ns], resource)
    return allocation, exceeded


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
