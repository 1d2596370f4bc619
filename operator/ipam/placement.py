"""Where a Service's addresses go: a plan from the pools, the holdings and its wish; no change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .addresses import IP, family_name
from .catalog import Catalog, PoolState, pool_list
from .holdings import Holder, Holdings
from .limits import Quota
from .pool import Pool
from .requests import Reason, Refusal, ServiceKey, ServiceRequest
from .sharing import consenting, missing_consent
from .wishes import Wish, wish_for

_NOT_OFFERED = (
    "never hands it out (the network or broadcast address of an IPv4 CIDR, unless "
    "allowFirstLastIPs is true; or x.x.x.0/255 with avoidBuggyIPs)"
)
# Reasons a PreferDualStack Service shrugs off for its second family: nothing to hand out
# (to its namespace, for a limit).
_SOFT_REASONS = (Reason.POOL_EXHAUSTED, Reason.NO_MATCHING_POOL, Reason.NAMESPACE_LIMIT_REACHED)


class Choice(NamedTuple):
    """One family's address, and the younger holders that must give it up."""

    ip: IP
    displace: tuple[ServiceKey, ...] = ()


class Plan(NamedTuple):
    """A decision not yet committed: the addresses per family and, if refused, why."""

    choices: Mapping[int, Choice]
    wish: Wish | None  # None when the request itself was refused
    refusal: Refusal | None = None
    refused_family: int | None = None  # the family `refusal` is about, if only one
    # Families a PreferDualStack Service goes without for now, and why.
    missing: tuple[tuple[int, Refusal], ...] = ()

    @property
    def named(self) -> tuple[Pool, ...] | None:
        return self.wish.named if self.wish is not None else None

    @property
    def partial(self) -> bool:
        return bool(self.missing)


class Placer:
    """Plans addresses from the catalog and the holdings; reads them, never changes them."""

    def __init__(self, catalog: Catalog, holdings: Holdings) -> None:
        self._catalog = catalog
        self._holdings = holdings

    def place(self, request: ServiceRequest, me: Holder, current: Mapping[int, IP]) -> Plan:
        """The plan for ``me``, which holds ``current`` (per family) now.

        Held addresses stay while they lie in some pool, match the static request, pool
        annotation and families, and no older Service holds them incompatibly (a younger one
        that does is displaced). A refused plan keeps held addresses that are still valid.
        """
        try:
            wish = wish_for(request, self._catalog)
        except Refusal as refusal:
            return Plan(self._keep(me, current, None), None, refusal)
        choices: dict[int, Choice] = {}
        missing: list[tuple[int, Refusal]] = []
        quota = Quota(self._holdings, me.key, current)
        for index, family in enumerate(wish.families):
            try:
                choice = self._choose(request, me, family, current.get(family), wish, quota)
                choices[family] = choice
                quota.charge(family, choice.ip)
            except Refusal as refusal:
                soft = request.family_policy == "PreferDualStack" and index > 0
                if not (soft and refusal.reason in _SOFT_REASONS):
                    return Plan(self._keep(me, current, wish), wish, refusal, family)
                missing.append((family, refusal))
        return Plan(choices, wish, missing=tuple(missing))

    def _choose(
        self,
        request: ServiceRequest,
        me: Holder,
        family: int,
        existing: IP | None,
        wish: Wish,
        quota: Quota,
    ) -> Choice:
        """One family's address: the static one, else the sharing group's, else held, else new."""
        static = wish.statics.get(family)
        keep = None
        if existing is not None and static in (None, existing):
            keep = self._keepable(me, existing, wish.named)
        kept = existing if keep is not None else None
        if static is not None:
            wanted: IP | None = static
        else:
            wanted = self._group_address(me, family, kept, wish.named)
        if kept is not None and keep is not None and wanted in (None, kept):
            return Choice(kept, keep)
        if wanted is None:
            return Choice(self._allocate(request, family, wish.named, quota))
        if static is not None:
            self._check_static(request, static, wish.named)
        self._check_reserved(me, wanted)
        quota.check(wanted, family, self._catalog.containing(wanted))
        return Choice(wanted, self._make_way(me, wanted, may_displace=False))

    def _keep(self, me: Holder, current: Mapping[int, IP], wish: Wish | None) -> dict[int, Choice]:
        """Held addresses that survive a failed request; any still in a pool if it is invalid."""
        kept: dict[int, Choice] = {}
        for family in wish.families if wish else tuple(current):
            ip = current.get(family)
            if ip is None or (wish is not None and wish.statics.get(family, ip) != ip):
                continue
            displace = self._keepable(me, ip, wish.named if wish else None)
            if displace is not None:
                kept[family] = Choice(ip, displace)
        return kept

    def _keepable(
        self, me: Holder, ip: IP, named: tuple[Pool, ...] | None
    ) -> tuple[ServiceKey, ...] | None:
        """Who must be displaced for ``me`` to keep ``ip``, or None when it cannot."""
        if not self._catalog.containing(ip) or (
            named is not None and not any(p.contains(ip) for p in named)
        ):
            return None
        try:
            return self._make_way(me, ip, may_displace=True)
        except Refusal:
            return None

    def _make_way(self, me: Holder, ip: IP, *, may_displace: bool) -> tuple[ServiceKey, ...]:
        """Holders that must give ``ip`` up for ``me``; refuses when one of them may keep it."""
        blocker = self._holdings.blocker(ip)
        if blocker is not None:
            raise Refusal(Reason.ADDRESS_IN_USE, f"{ip} is already used by {blocker}")
        hold = self._holdings.held.get(ip)
        if hold is not None and hold.key != me.key:
            raise Refusal(Reason.ADDRESS_HELD, self._holdings.held.describe(ip, hold))
        rivals = self._holdings.rivals(me, ip)
        if not rivals:
            return ()
        if may_displace and all(r.seniority > me.seniority for r in rivals):
            return tuple(r.key for r in rivals)
        rival = min(rivals, key=lambda r: r.seniority)
        if consenting(me, rival):
            ports = ", ".join(sorted(str(p) for p in me.ports & rival.ports))
            raise Refusal(
                Reason.PORT_CONFLICT,
                f'{ip} is shared under sharing key "{me.sharing_key}" with Service {rival.key}, '
                f"which also uses port {ports}",
            )
        apart = missing_consent(me, rival)
        raise Refusal(
            Reason.ADDRESS_IN_USE,
            f"{ip} is already used by Service {rival.key}" + (f"; {apart}" if apart else ""),
        )

    def _group_address(
        self, me: Holder, family: int, own: IP | None, named: tuple[Pool, ...] | None
    ) -> IP | None:
        """The address of this family held by the oldest member of the Service's sharing group
        whose other holders all consent with it too (ports aside: a clash is refused later)."""
        if me.sharing_key is None:
            return None
        candidates = [(me.seniority, own)] if own is not None else []
        for holder in self._holdings.group_members(me):
            candidates.extend(
                (holder.seniority, ip)
                for ip in holder.addresses
                if holder.key != me.key
                and ip.family == family
                and (named is None or any(p.contains(ip) for p in named))
            )
        # Its own address is kept on its own terms (_keepable); the others are judged once
        # each, however many members hold them.
        judged: dict[IP, bool] = {own: True} if own is not None else {}
        for _, ip in sorted(candidates):
            if ip not in judged:
                judged[ip] = self._all_consent(me, ip)
            if judged[ip]:
                return ip
        return None

    def _all_consent(self, me: Holder, ip: IP) -> bool:
        """Whether every other holder of ``ip`` consents with ``me``, each way."""
        holders = (self._holdings.holder(key) for key in self._holdings.owners(ip))
        return all(h is not None and (h.key == me.key or consenting(me, h)) for h in holders)

    def _check_static(
        self, request: ServiceRequest, ip: IP, named: tuple[Pool, ...] | None
    ) -> None:
        """Refuse a static address outside every pool this Service may use."""
        reasons = []
        waiting = False
        for pool in self._catalog.by_priority():
            if not pool.contains(ip):
                continue
            waiting = waiting or (pool.offers(ip) and self._protecting(pool, request, named))
            why = self.why_unusable(pool, request, named)
            if why is None and pool.offers(ip):
                return
            reasons.append(f'pool "{pool.name}" {why or _NOT_OFFERED}')
        if not reasons:
            raise Refusal(Reason.ADDRESS_NOT_IN_POOL, f"{ip} is not inside any IPPool")
        where = "; ".join(reasons)
        message = f"{ip} cannot be handed out: {where}"
        raise Refusal(Reason.ADDRESS_NOT_IN_POOL, message, waiting=waiting)

    def why_unusable(
        self, pool: Pool, request: ServiceRequest, named: tuple[Pool, ...] | None
    ) -> str | None:
        """Why this Service may get no new address from the pool, or None when it may."""
        if named is not None and pool not in named:
            return "is not named in lbipam.io/pool"
        if named is None and not pool.accepts(request.labels, request.namespace_labels):
            return "has selectors that do not match this Service"
        state, why = self._catalog.state(pool)
        return None if state is PoolState.READY else why

    def _check_reserved(self, me: Holder, ip: IP) -> None:
        """Refuse an address a Ready pool sets aside for another tenant (of overlapping pools,
        only the older one's reservations count)."""
        for pool in self._catalog.containing(ip):
            if self._catalog.state(pool)[0] is not PoolState.READY:
                continue
            entry = pool.reservation(ip)
            if entry is not None and not entry.reservation.matches(me.key):
                raise Refusal(
                    Reason.ADDRESS_RESERVED,
                    f'{ip} is reserved by pool "{pool.name}" {entry.describe()}',
                )

    def _pick(self, usable: list[Pool], key: ServiceKey, family: int, quota: Quota) -> IP | None:
        """An address set aside for the Service in any usable pool, else a free one, from
        pools whose perNamespaceLimit leaves its namespace room; refuses when only such
        limits stand in the way."""
        roomy = [pool for pool in usable if quota.room(pool, family)]
        for pool in roomy:
            ip = pool.reserved_for(key, family)
            if ip is not None:
                return ip
        for pool in roomy:
            ip = pool.free_address(family)
            if ip is not None:
                return ip
        full = [pool for pool in usable if pool not in roomy]
        if full:
            raise quota.refusal(full[0], family)
        return None

    def _allocate(
        self, request: ServiceRequest, family: int, named: tuple[Pool, ...] | None, quota: Quota
    ) -> IP:
        """A free address, in its pool's allocationOrder, of the first usable pool that has one."""
        candidates = (
            named
            if named is not None
            else [p for p in self._catalog.by_priority() if p.spec.auto_assign]
        )
        usable = [
            p
            for p in candidates
            if family in p.ranges and self.why_unusable(p, request, named) is None
        ]
        ip = self._pick(usable, request.key, family, quota)
        if ip is not None:
            return ip
        waiting = any(
            family in p.ranges and self._protecting(p, request, named) for p in candidates
        )
        if usable:
            others = sum(p.reserved_for_others(request.key, family) for p in usable)
            aside = f" ({others} free ones are reserved for other tenants)" if others else ""
            raise Refusal(
                Reason.POOL_EXHAUSTED,
                f"no free {family_name(family)} address in "
                f"{pool_list(p.name for p in usable)}{aside}"
                + self._holdings.held.note(usable, family),
                waiting=waiting,
            )
        lacking = f"has no {family_name(family)} addresses"
        why = [
            f'pool "{p.name}" {self.why_unusable(p, request, named) or lacking}'
            for p in candidates
            if named is not None or p.accepts(request.labels, request.namespace_labels)
        ]
        scope = "lbipam.io/pool" if named is not None else "autoAssign pools matching this Service"
        detail = f" ({'; '.join(why)})" if why else ""
        raise Refusal(
            Reason.NO_MATCHING_POOL,
            f"no {scope} can hand out an {family_name(family)} address{detail}",
            waiting=waiting,
        )

    def _protecting(
        self, pool: Pool, request: ServiceRequest, named: tuple[Pool, ...] | None
    ) -> bool:
        """Whether the pool would serve this Service but for its protection, not yet on."""
        if named is not None and pool not in named:
            return False
        if named is None and not pool.accepts(request.labels, request.namespace_labels):
            return False
        return self._catalog.state(pool)[0] is PoolState.PROTECTING
