"""`kubectl lbipam why NAMESPACE/SERVICE`: one Service in plain words."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from lbipam.ipam.addresses import FAMILY_NAMES, IP, parse_address
from lbipam.ipam.pool import Pool
from lbipam.ipam.registry import PoolState
from lbipam.ipam.requests import Reason, ServiceKey, ServiceRequest
from lbipam.kubectl.cluster import Body, Cluster
from lbipam.kubectl.netpol import describe_policy
from lbipam.kubectl.render import Style, age, wrap
from lbipam.kubectl.report import Report, event_lines
from lbipam.kubectl.view import View
from lbipam.objects import claim_view, held_addresses, our_condition, pool_spec, service_request
from lbipam.policy.build import build_policy, policy_name

WAITS: dict[str, str] = {
    Reason.POOL_EXHAUSTED: "every pool it may use is full. Free an address in one, add "
    "addresses to one, or let it use another pool.",
    Reason.NO_MATCHING_POOL: "no pool it may use hands out addresses: none matches it, or those "
    "that do are disabled, in conflict with an older pool, or invalid.",
    Reason.ADDRESS_IN_USE: "the address it asked for is held by someone else.",
    Reason.ADDRESS_NOT_IN_POOL: "the address it asked for lies in no pool it may use.",
    Reason.INVALID_REQUEST: "its request cannot be met as written; fix what the message names.",
    Reason.PORT_CONFLICT: "it shares its sharing key with a Service using the same port and "
    "protocol, so they cannot share one address.",
    Reason.ADDRESS_HELD: "the address it asked for is held for the Service that let it go "
    "(its pool's releaseHold). It gets the address when the hold ends, unless that Service "
    "comes back for it first.",
    Reason.ADDRESS_RESERVED: "the address it asked for is reserved by its pool for other "
    "Services. Ask for another, or have the pool's reservation name this Service.",
    Reason.NAMESPACE_LIMIT_REACHED: "its namespace holds as many addresses of the pool as the "
    "pool's perNamespaceLimit allows. Free one in the namespace, raise the limit, or let it use "
    "another pool.",
}
LAST_EVENTS = 5


def asked_for(request: ServiceRequest, service: Body) -> dict[str, Any]:
    statics = [
        *([request.load_balancer_ip] if request.load_balancer_ip else []),
        *request.requested_ips,
    ]
    return {
        "pools": list(request.pools),
        "addresses": statics,
        "sharingKey": request.sharing_key,
        "sharingCrossNamespace": sorted(request.share_with) if request.sharing_key else [],
        "families": [FAMILY_NAMES[f] for f in request.families],
        "familyPolicy": request.family_policy,
        "ports": sorted(str(p) for p in request.ports),
        "loadBalancerClass": (service.get("spec") or {}).get("loadBalancerClass"),
    }


def may_use(pool: Pool, request: ServiceRequest, statics: Sequence[IP]) -> tuple[bool, str]:
    """Whether lbipam tries the pool for this Service, and why (its state aside)."""
    if pool.ranges and not set(pool.ranges) & set(request.families):
        wanted = " or ".join(FAMILY_NAMES[f] for f in request.families)
        return False, f"it has no {wanted} addresses"
    if pool.name in request.pools:
        return True, "named in lbipam.io/pool"
    if not pool.accepts(request.labels, request.namespace_labels):
        return False, "its serviceSelector or namespaceSelector does not match this Service"
    if pool.spec.auto_assign:
        return True, "autoAssign, and its selectors match this Service"
    if any(pool.offers(ip) for ip in statics):
        return True, "the address it asked for lies in it (autoAssign false pools serve those)"
    return False, "autoAssign is false: only for Services naming it or asking for an address in it"


def pool_choices(view: View, request: ServiceRequest) -> list[dict[str, Any]]:
    """The pools lbipam may try for this Service, in the order it tries them, and why (not)."""
    specs = sorted(map(pool_spec, view.snapshot.pools), key=lambda s: (-s.priority, s.name))
    known = {spec.name for spec in specs}
    missing = "named in lbipam.io/pool, but no such pool exists"
    choices: list[dict[str, Any]] = [
        {"pool": name, "usable": False, "why": missing}
        for name in request.pools
        if name not in known
    ]
    statics = []
    for text in (request.load_balancer_ip, *request.requested_ips):
        with contextlib.suppress(ValueError):
            statics.append(parse_address(text or ""))
    for spec in specs:
        if request.pools and spec.name not in request.pools:
            continue  # a Service naming pools is tried on those alone
        usable, why = may_use(Pool.build(spec, ()), request, statics)
        summary = view.summary(spec.name)
        if usable and summary.state is not PoolState.READY:
            usable, why = False, f"{why}; but the pool {summary.why}"
        choice = {"usable": usable, "why": why, "priority": spec.priority}
        choices.append({"pool": spec.name, **choice, "available": summary.available})
    return choices


def verdict(addresses: Sequence[str], condition: Mapping[str, Any] | None, handled: str) -> str:
    if handled:
        return handled
    if condition is None:
        return (
            "lbipam has not decided about it yet: no lbipam.io/AddressAllocated condition "
            "(is the operator running?)."
        )
    holds = f"It holds {', '.join(addresses)}" if addresses else ""
    if condition.get("reason") == Reason.ALLOCATED:
        return f"{holds}: lbipam gave it and keeps it while it lies in a pool it may use."
    waits = WAITS.get(condition.get("reason") or "", "lbipam could not give it what it asked for.")
    return f"{holds}, but it waits for more: {waits}" if holds else f"It waits: {waits}"


def not_handled(service: Body, view: View) -> str:
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        kind = spec.get("type") or "ClusterIP"
        return f"lbipam does not handle it: it is of type {kind}, not LoadBalancer."
    if view.handles(service):
        return ""
    lb_class = spec.get("loadBalancerClass")
    if lb_class is None:
        return (
            "lbipam does not handle it: it has no loadBalancerClass, and lbipam is not the "
            "default implementation (--no-default-class)."
        )
    ours = view.settings.lb_class
    return f"lbipam does not handle it: its loadBalancerClass is {lb_class}, lbipam's is {ours}."


def decide_now(view: View, service: Body, request: ServiceRequest) -> dict[str, str] | None:
    """What lbipam decides for the Service from the cluster's objects as they are now, as a
    newly elected leader would: who holds, holds or reserves what it waits for. None for a
    Service lbipam does not handle. Run last: the decision changes the view's registry."""
    if not view.handles(service):
        return None
    outcome = view.registry.ensure(request)
    return {"reason": str(outcome.reason), "message": outcome.message}


def explain(
    view: View,
    service: Body,
    events: list[Body],
    policy: Body | None,
    claims: Sequence[Body | None],
) -> dict[str, Any]:
    meta = service["metadata"]
    request = service_request(service, view.namespace_labels(service))
    addresses = held_addresses(service)
    condition = our_condition(service)
    plan = build_policy(service)
    holds = [
        {
            "address": address,
            "pool": view.registry.pool_of(address),
            "claim": claim_view(claim).describe() if claim else None,
        }
        for address, claim in zip(addresses, claims, strict=True)
    ]
    return {
        "service": f"{meta['namespace']}/{meta['name']}",
        "verdict": verdict(addresses, condition, not_handled(service, view)),
        "condition": dict(condition) if condition else None,
        "askedFor": asked_for(request, service),
        "holds": holds,
        "pools": pool_choices(view, request),
        "networkPolicy": {
            "name": plan.name,
            "exists": policy is not None,
            "expected": plan.manifest is not None,
            "enforces": describe_policy(policy) if policy else [],
            "warnings": [f"{w.reason}: {w.message}" for w in plan.warnings],
        },
        "events": [
            {k: e.get(k) for k in ("type", "reason", "message", "count", "lastTimestamp")}
            for e in events[-LAST_EVENTS:]
        ],
        "decidedNow": decide_now(view, service, request),
    }


async def why_report(cluster: Cluster, view: View, key: ServiceKey, style: Style) -> Report:
    service = next(
        (
            s
            for s in view.snapshot.services
            if s["metadata"]["namespace"] == key.namespace and s["metadata"]["name"] == key.name
        ),
        None,
    )
    if service is None:
        return Report({"error": f"no Service {key}"}, [f"Service {key} does not exist."], ok=False)
    meta = service["metadata"]
    events, policy, claims, ours = await asyncio.gather(
        cluster.events_of(key.namespace, key.name, meta.get("uid")),
        cluster.network_policy(key.namespace, policy_name(key.name)),
        asyncio.gather(*(cluster.claim(a) for a in held_addresses(service))),
        cluster.our_claims(),
    )
    view.restore_holds(ours)
    data = explain(view, service, events, policy, claims)
    return Report(data, why_lines(data, style))


def why_lines(data: Mapping[str, Any], style: Style) -> list[str]:
    lines = [style(f"Service {data['service']}", "bold"), *wrap(data["verdict"], "  ")]
    condition = data["condition"]
    if condition:
        tone = "good" if condition.get("status") == "True" else "bad"
        head = style(f"{condition.get('reason')}", tone)
        lines += wrap(
            f"lbipam says ({head}, {age(condition.get('lastTransitionTime') or '')} ago): "
            f"{condition.get('message')}",
            "  ",
        )
    lines += decided_lines(data["decidedNow"], condition)
    lines += ["", "Asked for:", *asked_lines(data["askedFor"])]
    if data["holds"]:
        lines += ["", "Holds:"]
        for hold in data["holds"]:
            claim = f"claimed by {hold['claim']}" if hold["claim"] else "no IPAddress claim"
            lines.append(
                f"  {hold['address']} from pool {hold['pool'] or '(none: in no pool)'}; {claim}"
            )
    lines += ["", "Pools, in the order lbipam tries them:"]
    for choice in data["pools"]:
        mark = style("may use", "good") if choice["usable"] else style("not used", "dim")
        free = f" ({choice['available']} available)" if "available" in choice else ""
        lines += wrap(f"{choice['pool']}{free}: {mark}: {choice['why']}", "  ")
    lines += ["", *policy_lines(data["networkPolicy"], style), "", "Last events:"]
    return lines + (event_lines(data["events"], style) if data["events"] else ["  none"])


def decided_lines(
    decided: Mapping[str, str] | None, condition: Mapping[str, Any] | None
) -> list[str]:
    """lbipam's decision from the cluster as it is now, where the Service does not get what it
    asked for, or where it differs from what the condition says (lbipam has not caught up)."""
    if decided is None:
        return []
    said = (condition or {}).get("reason"), (condition or {}).get("message")
    if decided["reason"] == Reason.ALLOCATED or said == (decided["reason"], decided["message"]):
        return []
    return wrap(f"From the cluster's objects now: {decided['reason']}: {decided['message']}", "  ")


def asked_lines(asked: Mapping[str, Any]) -> list[str]:
    pools = (
        ", ".join(asked["pools"])
        if asked["pools"]
        else "any autoAssign pool whose selectors match it"
    )
    lines = [f"  pools: {pools}"]
    if asked["addresses"]:
        lines.append(f"  addresses: {', '.join(asked['addresses'])}")
    if asked["sharingKey"]:
        across = asked["sharingCrossNamespace"]
        also = f", also with namespaces {', '.join(across)}" if across else ""
        ports = ", ".join(asked["ports"])
        lines.append(f"  sharing key: {asked['sharingKey']} (ports {ports}{also})")
    lines.append(f"  families: {', '.join(asked['families'])} ({asked['familyPolicy']})")
    return lines


def policy_lines(policy: Mapping[str, Any], style: Style) -> list[str]:
    name = policy["name"]
    if policy["exists"]:
        lines = [f"NetworkPolicy {name}:"]
        for sentence in policy["enforces"]:
            lines += wrap(sentence, "  ")
    elif policy["expected"]:
        lines = [style(f"NetworkPolicy {name} should exist but does not (yet).", "bad")]
    else:
        lines = ["NetworkPolicy: none (no loadBalancerSourceRanges to enforce)."]
    for warning in policy["warnings"]:
        lines += wrap(style(warning, "warn"), "  ")
    return lines
