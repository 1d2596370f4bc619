"""A Service's request, validated: its families, static addresses and named pools."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .addresses import FAMILIES, IP, family_name, parse_address
from .catalog import Catalog, pool_list
from .pool import Pool
from .requests import FAMILY_POLICIES, Reason, Refusal, ServiceRequest


@dataclass(frozen=True, slots=True)
class Wish:
    """A request's families (first is primary), static addresses and named pools."""

    families: tuple[int, ...]
    statics: Mapping[int, IP]
    # The pools lbipam.io/pool names, by priority; None when it names none.
    named: tuple[Pool, ...] | None


def wish_for(request: ServiceRequest, catalog: Catalog) -> Wish:
    """The request's wish; Refusal when the request is invalid or names a missing pool."""
    if request.invalid:
        raise Refusal(Reason.INVALID_REQUEST, request.invalid)
    if request.family_policy not in FAMILY_POLICIES:
        raise Refusal(
            Reason.INVALID_REQUEST,
            f'ipFamilyPolicy "{request.family_policy}" is not one of ' + ", ".join(FAMILY_POLICIES),
        )
    if (
        not request.families
        or len(set(request.families)) != len(request.families)
        or any(f not in FAMILIES for f in request.families)
    ):
        raise Refusal(
            Reason.INVALID_REQUEST,
            f"ipFamilies {list(request.families)} must list IPv4 and/or IPv6 once each",
        )
    if request.family_policy == "SingleStack":
        families = request.families[:1]
    else:
        families = request.families + tuple(f for f in FAMILIES if f not in request.families)
    wanted = statics(request)
    for family, ip in wanted.items():
        if family not in families:
            raise Refusal(
                Reason.INVALID_REQUEST,
                f"{ip} is {family_name(family)} but the Service is single-stack "
                f"{family_name(families[0])}; change lbipam.io/ips or spec.ipFamilies",
            )
    return Wish(families, wanted, _named(request.pools, catalog))


def _named(names: tuple[str, ...], catalog: Catalog) -> tuple[Pool, ...] | None:
    if not names:
        return None
    unknown = [name for name in names if not catalog.has(name)]
    if unknown:
        raise Refusal(
            Reason.NO_MATCHING_POOL,
            f"{pool_list(unknown)} named in lbipam.io/pool "
            f"{'does' if len(unknown) == 1 else 'do'} not exist",
        )
    return tuple(p for p in catalog.by_priority() if p.name in names)


def statics(request: ServiceRequest) -> dict[int, IP]:
    """The static address asked for per family; Refusal when they cannot be read or clash."""
    found: dict[int, IP] = {}
    for text in (t for t in request.requested_ips if t.strip()):
        ip = _parse_static("lbipam.io/ips", text)
        if ip.family in found:
            raise Refusal(
                Reason.INVALID_REQUEST,
                f"lbipam.io/ips lists two {family_name(ip.family)} addresses "
                f"({found[ip.family]}, {ip}); give at most one per family",
            )
        found[ip.family] = ip
    if request.load_balancer_ip and request.load_balancer_ip.strip():
        ip = _parse_static("spec.loadBalancerIP", request.load_balancer_ip)
        other = found.setdefault(ip.family, ip)
        if other != ip:
            raise Refusal(
                Reason.INVALID_REQUEST,
                f"spec.loadBalancerIP {ip} and lbipam.io/ips {other} disagree; drop one of them",
            )
    return found


def _parse_static(where: str, text: str) -> IP:
    try:
        return parse_address(text)
    except ValueError as error:
        raise Refusal(Reason.INVALID_REQUEST, f"{where}: {error}") from None
