"""What a Service is told: the terms its addresses were granted under, and its Outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .addresses import IP, family_name
from .catalog import Catalog, pool_list
from .holdings import NO_TERMS, Holder, Holdings, Terms
from .placement import Placer, Plan
from .pool import Pool
from .requests import Outcome, Reason, Refusal, ServiceRequest
from .sharing import missing_consent
from .wishes import statics


def requested(request: ServiceRequest) -> Holder:
    """The Service as it asks now, holding nothing, its terms those of the request."""
    sharing, pools = request.sharing_key or None, request.pools
    terms = (pools, sharing) if pools or sharing else NO_TERMS
    return Holder(
        request.key,
        request.seniority,
        sharing,
        request.ports,
        pools,
        (),
        terms,
        terms,
        request.share_with if sharing else frozenset(),
    )


def applicant(
    request: ServiceRequest, known: Holder | None, held: Sequence[IP], bare: Terms | None
) -> Holder:
    """The Service about to be decided, with the terms its status's addresses, `held`, have."""
    me = requested(request)
    if known is not None:
        return replace(me, shown_terms=shown(known, held))
    return me if bare is None else replace(me, shown_terms=bare)


def shown(holder: Holder, held: Sequence[IP]) -> Terms:
    """The terms of the status's addresses, `held`."""
    return holder.granted if set(holder.addresses) == set(held) else holder.shown_terms


def terms_at(holder: Holder, ip: IP, held: Sequence[IP]) -> Terms:
    """The terms `ip`, held by the registry or the status, was granted under."""
    return holder.granted if ip in holder.addresses else shown(holder, held)


def granted(me: Holder, known: Holder | None, plan: Plan, held: Sequence[IP]) -> Holder:
    """``me`` with the terms it keeps its addresses under: an invalid request grants nothing,
    so what it keeps stays under the terms it had."""
    if plan.wish is not None or not plan.choices:
        return me
    ip = next(iter(plan.choices.values())).ip
    return replace(me, granted=terms_at(known, ip, held) if known else me.shown_terms)


class Verdict:
    """Turns a committed plan into the Outcome a Service's status shows."""

    def __init__(self, catalog: Catalog, holdings: Holdings, placer: Placer) -> None:
        self._catalog = catalog
        self._holdings = holdings
        self._placer = placer

    def outcome(
        self,
        request: ServiceRequest,
        plan: Plan,
        me: Holder,
        known: Holder | None,
        held: Sequence[IP],
    ) -> Outcome:
        """The Outcome of ``plan``, committed for ``me``, which held ``known`` before."""
        final = tuple(choice.ip for choice in plan.choices.values())
        before = dict.fromkeys([*(known.addresses if known else ()), *held])
        pools = tuple(self._credit(ip, request, plan.named) for ip in final)
        released = [ip for ip in before if ip not in final]
        regrouped = known is not None and (known.sharing_key, known.share_with) != (
            me.sharing_key,
            me.share_with,
        )
        return Outcome(
            addresses=tuple(str(ip) for ip in final),
            pools=pools,
            reason=Reason.ALLOCATED if plan.refusal is None else plan.refusal.reason,
            message=_message(plan, final, pools),
            allocated=tuple(str(ip) for ip in final if ip not in held),
            released=tuple(str(ip) for ip in released),
            revoked={
                str(ip): why
                for ip in released
                if (why := self._taken_away(request, me, known, ip, held, final))
            },
            displaced=tuple(sorted({k for c in plan.choices.values() for k in c.displace})),
            followers=self._holdings.followers(me, final)
            if set(final) != set(before) or regrouped
            else (),
            waiting=plan.refusal is not None and plan.refusal.waiting,
            partial=plan.partial,
        )

    def _taken_away(
        self,
        request: ServiceRequest,
        me: Holder,
        known: Holder | None,
        ip: IP,
        held: Sequence[IP],
        final: tuple[IP, ...],
    ) -> str | None:
        """Why a Service lost an address it did not ask to lose; None when it asked.

        Leaving its named pools, or following its sharing group, counts only while its
        annotations are those the address was granted under.
        """
        pools, sharing_key = terms_at(known, ip, held) if known else me.shown_terms
        if not self._catalog.containing(ip):
            return f"{ip} is no longer in any pool"
        blocker = self._holdings.blocker(ip)
        if blocker is not None:
            return f"{ip} is already used by {blocker}"
        rivals = self._holdings.rivals(me, ip)
        # Held by the group it left: as asked.
        left = sharing_key not in (None, me.sharing_key)
        if rivals and not (left and all(r.sharing_key == sharing_key for r in rivals)):
            apart = "".join(f"; {why}" for r in rivals if (why := missing_consent(me, r)))
            older = ", ".join(str(r.key) for r in rivals)
            return f"{ip} is held by the older Service {older}{apart}"
        if pools != me.pools:
            return None
        if self._catalog.outside_named(me.pools, ip):
            named = pool_list(self._catalog.existing(me.pools))
            return f"{ip} is no longer in {named}, which lbipam.io/pool names"
        if sharing_key != me.sharing_key:
            return None
        return self._moved_with_group(request, me, ip, final)

    def _moved_with_group(
        self, request: ServiceRequest, me: Holder, ip: IP, final: tuple[IP, ...]
    ) -> str | None:
        """Why ``me`` lost ``ip`` to its sharing group's address, or None when it asked."""
        try:
            static = ip.family in statics(request)
        except Refusal:
            static = True  # an invalid request: its author is changing it
        now = next((new for new in final if new.family == ip.family), None)
        shared = now is not None and any(k != me.key for k in self._holdings.owners(now))
        if me.sharing_key is not None and shared and not static:
            return f'{ip}: the Services sharing key "{me.sharing_key}" moved to {now}'
        return None

    def _credit(self, ip: IP, request: ServiceRequest, named: tuple[Pool, ...] | None) -> str:
        """The pool to credit: the first this Service could allocate from, else the oldest."""
        containing = self._catalog.containing(ip)
        usable = (p for p in self._catalog.by_priority() if p in containing)
        why_unusable = self._placer.why_unusable
        pool = next((p for p in usable if why_unusable(p, request, named) is None), None)
        return (pool or min(containing, key=lambda p: p.spec.seniority)).name


def _message(plan: Plan, final: tuple[IP, ...], pools: tuple[str, ...]) -> str:
    """The condition's message: where each address comes from, and any refusal."""
    described = ", ".join(f'{ip} from pool "{pool}"' for ip, pool in zip(final, pools, strict=True))
    if plan.refusal is None:
        note = "; ".join(_about(plan, family, refusal) for family, refusal in plan.missing)
        return "; ".join(filter(None, [described, note]))
    note = _about(plan, plan.refused_family, plan.refusal)
    return f"{note}; keeping {described}" if final else note


def _about(plan: Plan, family: int | None, refusal: Refusal) -> str:
    """A refusal's message, saying which family it is about when the Service wants two."""
    if family is None or plan.wish is None or len(plan.wish.families) == 1:
        return refusal.message
    return f"{family_name(family)}: {refusal.message}"
