"""All pools and every Service holding an address: choose, allocate, reserve, release, rebuild."""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .addresses import FAMILIES, IP, Interval, family_name, normalize, parse_address, parse_entry
from .pool import FamilyCounts, Pool, PoolSpec
from .requests import FAMILY_POLICIES, Outcome, Port, Reason, ServiceKey, ServiceRequest

_NOT_OFFERED = (
    "never hands it out (the network or broadcast address of an IPv4 CIDR, unless "
    "allowFirstLastIPs is true; or x.x.x.0/255 with avoidBuggyIPs)"
)
# Reasons a PreferDualStack Service shrugs off for its second family: nothing to hand out.
_SOFT_REASONS = (Reason.POOL_EXHAUSTED, Reason.NO_MATCHING_POOL)


class PoolState(enum.StrEnum):
    """Whether a pool hands out new addresses, and if not, why (the pool's Ready reason)."""

    READY = "Ready"
    INVALID_SPEC = "InvalidSpec"
    CONFLICT = "Conflict"
    DISABLED = "Disabled"
    PROTECTING = "Protecting"


@dataclass(frozen=True)
class PoolSummary:
    name: str
    counts: tuple[FamilyCounts, ...]
    total: int
    allocated: int
    available: int
    state: PoolState
    why: str  # completes "the pool ...": why it hands out nothing new, "" when Ready
    conflict_with: str | None
    error: str | None
    reserved_overlap: tuple[str, ...] = ()  # reserved ranges (ServiceCIDRs) it overlaps

    @property
    def exhausted(self) -> bool:
        return self.available == 0


@dataclass(frozen=True)
class PoolChange:
    revoked: tuple[ServiceKey, ...]  # lost an address that left every pool
    conflicts: tuple[str, ...]
    # Hold an address that left the pools they name: still theirs until they move.
    moving: tuple[ServiceKey, ...] = ()


_Terms = tuple[tuple[str, ...], str | None]  # lbipam.io/pool names, sharing key
_NO_TERMS: _Terms = ((), None)  # most Services': one tuple for all of them


@dataclass(frozen=True, slots=True)
class _Holder:
    """What the registry remembers of a Service that holds addresses."""

    key: ServiceKey
    seniority: tuple[str, str, str]
    sharing_key: str | None
    ports: frozenset[Port]
    # The pools its lbipam.io/pool named at its last decision: an address outside them moves.
    pools: tuple[str, ...]
    addresses: tuple[IP, ...] = ()
    # The lbipam.io/pool and sharing key `addresses` were granted under: a request refused as
    # invalid (a pool named before it exists) grants nothing, so they may be older ones.
    granted: _Terms = _NO_TERMS
    # ...and those the status's addresses were granted under: a decision whose write failed
    # (409) is not the status's yet.
    shown_terms: _Terms = _NO_TERMS

    @classmethod
    def of(cls, request: ServiceRequest) -> _Holder:
        sharing, pools = request.sharing_key or None, request.pools
        terms = (pools, sharing) if pools or sharing else _NO_TERMS
        return cls(request.key, request.seniority, sharing, request.ports, pools, (), terms, terms)

    def shown(self, held: Sequence[IP]) -> _Terms:
        """The terms of the status's addresses, `held`."""
        return self.granted if set(self.addresses) == set(held) else self.shown_terms

    def terms(self, ip: IP, held: Sequence[IP]) -> _Terms:
        """The terms `ip`, held by the registry or the status, was granted under."""
        return self.granted if ip in self.addresses else self.shown(held)

    @property
    def group(self) -> tuple[str, str] | None:
        return None if self.sharing_key is None else (self.key.namespace, self.sharing_key)

    def can_share(self, other: _Holder) -> bool:
        return self.group is not None and self.group == other.group and not self.ports & other.ports


class _Refusal(Exception):
    def __init__(self, reason: Reason, message: str, *, waiting: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        # A pool that could serve is only waiting for its protection: not a verdict yet.
        self.waiting = waiting


@dataclass(frozen=True)
class _Choice:
    ip: IP
    displace: tuple[ServiceKey, ...] = ()


@dataclass(frozen=True)
class _Wishes:
    """A request's families and static addresses, validated."""

    families: tuple[int, ...]
    statics: Mapping[int, IP]
    named: tuple[Pool, ...] | None


class Registry:
    """The in-memory truth between the cluster's IPPools and Services' status addresses."""

    def __init__(self) -> None:
        # Every pool by name; each pool's free intervals exclude exactly the keys of _owners.
        self._pools: dict[str, Pool] = {}
        # Pool -> the oldest pool it overlaps; such a pool hands out nothing new.
        self._conflicts: dict[str, str] = {}
        # _pools by (priority desc, name), or None after any pool change.
        self._ordered: list[Pool] | None = None
        # Services holding at least one address; a holder's addresses are keys of _owners.
        self._holders: dict[ServiceKey, _Holder] = {}
        # Services a decision left with no address while their status may still show some:
        # the terms those were granted under (a _Holder's shown_terms).
        self._bare: dict[ServiceKey, _Terms] = {}
        # Address -> its holders: one, or several that can all share it; never empty.
        self._owners: dict[IP, tuple[ServiceKey, ...]] = {}
        # (namespace, sharing key) -> holders in that group; never an empty set.
        self._groups: dict[tuple[str, str], set[ServiceKey]] = {}
        # Addresses held outside lbipam (a ClusterIP, another controller) -> who holds them.
        # Taken in every pool, never handed out; learned when a claim is refused.
        self._blocked: dict[IP, str] = {}
        # Ranges the cluster hands out itself (ServiceCIDRs), by name: never handed out here.
        self._reserved: dict[str, tuple[tuple[int, Interval], ...]] = {}
        # Grows with every change of pools or holdings: readers compare it to know when to look.
        self.changes = 0

    # ---- pools -------------------------------------------------------------------------

    def apply_pool(self, spec: PoolSpec) -> PoolChange:
        """Create or update a pool; a bad spec is recorded as the pool's error, never raised."""
        previous = self._pools.get(spec.name)
        if previous is not None and previous.spec == spec:
            # Status writes echo back as pool events; rebuilding would cost O(holders) each.
            return PoolChange((), ())
        self._pools[spec.name] = Pool.build(
            spec, [*self._owners, *self._blocked], previous, self._reserved_ranges()
        )
        return self._pools_changed(previous)

    def block(self, address: str, holder: str) -> tuple[ServiceKey, ...]:
        """The address is held outside lbipam: nobody gets it; returns who must give it up."""
        ip = parse_address(address)
        losers = self._owners.get(ip, ())
        self._displace(losers, ip)
        self._blocked[ip] = holder
        for pool in self._containing(ip):
            pool.take(ip)
        self.changes += 1
        return losers

    def unblock(self, address: str) -> bool:
        """Its outside holder let it go: the address may be handed out again. Whether it was
        blocked."""
        ip = parse_address(address)
        if self._blocked.pop(ip, None) is None:
            return False
        if ip not in self._owners:
            for pool in self._containing(ip):
                pool.give_back(ip)
        self.changes += 1
        return True

    def reserve(self, ranges: Mapping[str, Sequence[str]]) -> PoolChange:
        """Set the ranges handed out by the cluster itself; pools stop offering them.

        Holders inside them keep their addresses, as with any address a pool still covers.
        """
        reserved = {}
        for name, cidrs in ranges.items():
            entries = []
            for text in cidrs:
                try:
                    entries.append(parse_entry(text))
                except ValueError:
                    continue  # the API server validated it; an odd one is not ours to judge
            reserved[name] = tuple(entries)
        if reserved == self._reserved:
            return PoolChange((), ())
        self._reserved = reserved
        kept = [*self._owners, *self._blocked]
        for name, pool in list(self._pools.items()):
            self._pools[name] = Pool.build(pool.spec, kept, pool, self._reserved_ranges())
        return self._pools_changed(None)

    def _reserved_ranges(self) -> dict[int, list[Interval]]:
        per_family: dict[int, list[Interval]] = {}
        for entries in self._reserved.values():
            for family, interval in entries:
                per_family.setdefault(family, []).append(interval)
        return {family: normalize(intervals) for family, intervals in per_family.items()}

    def remove_pool(self, name: str) -> PoolChange:
        return self._pools_changed(self._pools.pop(name, None))

    def pool_summary(self, name: str) -> PoolSummary:
        pool = self._pools[name]
        counts = pool.counts()
        state, why = self._state(pool)
        overlap = tuple(
            name
            for name, entries in sorted(self._reserved.items())
            if any(pool.overlaps(family, interval) for family, interval in entries)
        )
        return PoolSummary(
            name=name,
            counts=counts,
            total=sum(c.total for c in counts),
            allocated=sum(c.allocated for c in counts),
            available=sum(c.available for c in counts),
            state=state,
            why=why,
            conflict_with=self._conflicts.get(name),
            error=pool.error,
            reserved_overlap=overlap,
        )

    def _state(self, pool: Pool) -> tuple[PoolState, str]:
        """The one place that says whether a pool may hand out anything new."""
        if pool.error is not None:
            return PoolState.INVALID_SPEC, f"has an invalid spec: {pool.error}"
        if pool.name in self._conflicts:
            return PoolState.CONFLICT, f'overlaps the older pool "{self._conflicts[pool.name]}"'
        if pool.spec.disabled:
            return PoolState.DISABLED, "is disabled or being deleted"
        if not pool.spec.protected:
            return PoolState.PROTECTING, "is not yet protected against deletion while in use"
        return PoolState.READY, ""

    def pool_names(self) -> list[str]:
        return sorted(self._pools)

    def has_pool(self, name: str) -> bool:
        return name in self._pools

    def holders(self, pool: str) -> tuple[ServiceKey, ...]:
        inside = self._pools[pool].contains
        return tuple(sorted({k for ip, keys in self._owners.items() if inside(ip) for k in keys}))

    def held_by(self, key: ServiceKey) -> tuple[str, ...]:
        holder = self._holders.get(key)
        return tuple(str(ip) for ip in holder.addresses) if holder else ()

    def owners_of(self, address: str) -> tuple[ServiceKey, ...]:
        """The Services holding the address now (several only when they share it)."""
        try:
            return self._owners.get(parse_address(address), ())
        except ValueError:
            return ()

    def pool_of(self, address: str) -> str | None:
        """The oldest pool containing the address (the one not in conflict), if any."""
        try:
            containing = self._containing(parse_address(address))
        except ValueError:
            return None
        return min(containing, key=lambda p: p.spec.seniority).name if containing else None

    def _pools_changed(self, previous: Pool | None) -> PoolChange:
        self._ordered = None
        self.changes += 1
        revoked: set[ServiceKey] = set()
        moving: set[ServiceKey] = set()
        if previous is not None:
            for ip in [ip for ip in self._owners if previous.contains(ip)]:
                if not self._containing(ip):
                    revoked.update(self._owners[ip])
                    self._displace(self._owners[ip], ip)
                else:
                    owners = self._owners[ip]
                    moving.update(k for k in owners if self._outside_named(self._holders[k], ip))
        before = self._conflicts
        self._conflicts = self._find_conflicts()
        changed = {
            n
            for n in before.keys() | self._conflicts.keys()
            if before.get(n) != self._conflicts.get(n)
        }
        return PoolChange(
            tuple(sorted(revoked)),
            tuple(sorted(changed & self._pools.keys())),
            tuple(sorted(moving)),
        )

    def _followers(self, me: _Holder, final: tuple[IP, ...]) -> tuple[ServiceKey, ...]:
        """The other members of the holder's sharing group whose addresses differ from it."""
        if me.group is None:
            return ()
        members = self._groups.get(me.group, set()) - {me.key}
        return tuple(sorted(k for k in members if set(self._holders[k].addresses) != set(final)))

    def _outside_named(self, holder: _Holder, ip: IP) -> bool:
        """Whether the holder names pools (that exist) and none of them covers ``ip``."""
        named = [self._pools[name] for name in holder.pools if name in self._pools]
        return bool(named) and not any(pool.contains(ip) for pool in named)

    def _find_conflicts(self) -> dict[str, str]:
        """Each pool overlapping an older one -> the oldest such: one sweep over sorted ranges.

        Comparing every pair on every pool change made thousands of pools cost minutes.
        """
        by_age = sorted(self._pools.values(), key=lambda p: p.spec.seniority)
        rank = {pool.name: index for index, pool in enumerate(by_age)}
        oldest: dict[int, int] = {}
        for family in FAMILIES:
            spans = sorted(
                (start, end, rank[pool.name])
                for pool in by_age
                for start, end in pool.ranges.get(family, ())
            )
            active: list[tuple[int, int]] = []  # heap of (end, rank) of spans still open
            for start, end, me in spans:
                while active and active[0][0] < start:
                    heapq.heappop(active)
                for _, other in active:
                    if other != me:
                        young, old = max(me, other), min(me, other)
                        oldest[young] = min(old, oldest.get(young, old))
                heapq.heappush(active, (end, me))
        return {by_age[young].name: by_age[old].name for young, old in oldest.items()}

    def _by_priority(self) -> list[Pool]:
        if self._ordered is None:
            self._ordered = sorted(self._pools.values(), key=lambda p: (-p.spec.priority, p.name))
        return self._ordered

    def _containing(self, ip: IP) -> list[Pool]:
        return [pool for pool in self._pools.values() if pool.contains(ip)]

    # ---- holdings ----------------------------------------------------------------------

    def _store(self, holder: _Holder) -> None:
        """Record a holder's addresses, reserving and freeing them in every pool they lie in."""
        old = self._holders.pop(holder.key, None)
        old_addresses = old.addresses if old else ()
        if old_addresses != holder.addresses:
            self.changes += 1
        if old is not None and old.group is not None:
            self._groups[old.group].discard(holder.key)
            if not self._groups[old.group]:
                del self._groups[old.group]
        for ip in old_addresses:
            if ip not in holder.addresses:
                self._detach(holder.key, ip)
        for ip in holder.addresses:
            if ip not in old_addresses:
                self._attach(holder.key, ip)
        if holder.addresses:
            self._holders[holder.key] = holder
            if holder.group is not None:
                self._groups.setdefault(holder.group, set()).add(holder.key)

    def _attach(self, key: ServiceKey, ip: IP) -> None:
        owners = self._owners.get(ip)
        if owners is None:
            for pool in self._containing(ip):
                pool.take(ip)
            self._owners[ip] = (key,)
        else:
            self._owners[ip] = (*owners, key)

    def _detach(self, key: ServiceKey, ip: IP) -> bool:
        """Whether the address became free."""
        owners = tuple(k for k in self._owners[ip] if k != key)
        if owners:
            self._owners[ip] = owners
            return False
        del self._owners[ip]
        for pool in self._containing(ip):
            pool.give_back(ip)
        return True

    def _displace(self, keys: Iterable[ServiceKey], ip: IP) -> None:
        for key in keys:
            holder = self._holders[key]
            self._store(replace(holder, addresses=tuple(a for a in holder.addresses if a != ip)))

    def release(self, key: ServiceKey) -> tuple[str, ...]:
        """Forget the Service; returns the addresses nobody holds any more."""
        self._bare.pop(key, None)
        holder = self._holders.get(key)
        if holder is None:
            return ()
        freed = [ip for ip in holder.addresses if len(self._owners[ip]) == 1]
        self._store(replace(holder, addresses=()))
        return tuple(str(ip) for ip in freed)

    def rebuild(self, requests: Iterable[ServiceRequest]) -> tuple[ServiceKey, ...]:
        """Replace all holdings with what Services' statuses say; older wins a duplicate.

        Returns the Services that lost an address to an older one. Addresses outside every
        pool are not registered; the Service's next ensure() replaces them.
        """
        self._holders.clear()
        self._owners.clear()
        self._groups.clear()
        self._blocked.clear()
        self._bare.clear()
        self._pools = {name: Pool(p.spec, p.spans, (), p.error) for name, p in self._pools.items()}
        self._ordered = None
        self.changes += 1
        losers: set[ServiceKey] = set()
        for request in sorted(requests, key=lambda r: r.seniority):
            me = _Holder.of(request)
            kept: dict[int, IP] = {}
            for ip in _parse_held(request.held):
                if ip.family in kept or not self._containing(ip):
                    continue
                if all(me.can_share(self._holders[k]) for k in self._owners.get(ip, ())):
                    kept[ip.family] = ip
                else:
                    losers.add(request.key)
            self._store(replace(me, addresses=tuple(kept.values())))
        return tuple(sorted(losers))

    # ---- Services ----------------------------------------------------------------------

    def ensure(self, request: ServiceRequest) -> Outcome:
        """Decide the Service's addresses now; calling again with the result changes nothing.

        Addresses the Service holds stay while they lie in some pool, match its static
        request, pool annotation and families, and no older Service holds them incompatibly
        (a younger one that does is displaced). On failure nothing new is handed out, but
        held addresses that are still valid are kept and reported in ``addresses`` (so a
        RequireDualStack Service whose IPv6 pool ran dry keeps serving on IPv4 while its
        condition says PoolExhausted).
        """
        me = _Holder.of(request)
        held = _parse_held(request.held)
        current = {ip.family: ip for ip in held}
        if (known := self._holders.get(request.key)) is not None:
            current.update({ip.family: ip for ip in known.addresses})
        bare = self._bare.pop(request.key, me.shown_terms)
        me = replace(me, shown_terms=known.shown(held) if known else bare)
        try:
            wishes = self._wishes(request)
        except _Refusal as refusal:
            kept = self._keep(me, current, None)
            if kept:
                ip = next(iter(kept.values())).ip
                me = replace(me, granted=known.terms(ip, held) if known else me.shown_terms)
            return self._commit(request, me, kept, held, None, refusal, refusal.message)
        choices: dict[int, _Choice] = {}
        missing: list[str] = []
        for index, family in enumerate(wishes.families):
            try:
                choices[family] = self._choose(request, me, family, current.get(family), wishes)
            except _Refusal as refusal:
                soft = request.family_policy == "PreferDualStack" and index > 0
                text = refusal.message
                if len(wishes.families) > 1:
                    text = f"{family_name(family)}: {text}"
                if not (soft and refusal.reason in _SOFT_REASONS):
                    kept = self._keep(me, current, wishes)
                    return self._commit(request, me, kept, held, wishes.named, refusal, text)
                missing.append(text)
        outcome = self._commit(request, me, choices, held, wishes.named, None, "; ".join(missing))
        return replace(outcome, partial=bool(missing))

    def _wishes(self, request: ServiceRequest) -> _Wishes:
        if request.invalid:
            raise _Refusal(Reason.INVALID_REQUEST, request.invalid)
        if request.family_policy not in FAMILY_POLICIES:
            raise _Refusal(
                Reason.INVALID_REQUEST,
                f'ipFamilyPolicy "{request.family_policy}" is not one of '
                + ", ".join(FAMILY_POLICIES),
            )
        if (
            not request.families
            or len(set(request.families)) != len(request.families)
            or any(f not in FAMILIES for f in request.families)
        ):
            raise _Refusal(
                Reason.INVALID_REQUEST,
                f"ipFamilies {list(request.families)} must list IPv4 and/or IPv6 once each",
            )
        if request.family_policy == "SingleStack":
            families = request.families[:1]
        else:
            families = request.families + tuple(f for f in FAMILIES if f not in request.families)
        statics = _statics(request)
        for family, ip in statics.items():
            if family not in families:
                raise _Refusal(
                    Reason.INVALID_REQUEST,
                    f"{ip} is {family_name(family)} but the Service is single-stack "
                    f"{family_name(families[0])}; change lbipam.io/ips or spec.ipFamilies",
                )
        return _Wishes(families, statics, self._named(request.pools))

    def _named(self, names: tuple[str, ...]) -> tuple[Pool, ...] | None:
        if not names:
            return None
        unknown = [name for name in names if name not in self._pools]
        if unknown:
            raise _Refusal(
                Reason.NO_MATCHING_POOL,
                f"{_pool_list(unknown)} named in lbipam.io/pool "
                f"{'does' if len(unknown) == 1 else 'do'} not exist",
            )
        return tuple(p for p in self._by_priority() if p.name in names)

    def _choose(
        self,
        request: ServiceRequest,
        me: _Holder,
        family: int,
        existing: IP | None,
        wishes: _Wishes,
    ) -> _Choice:
        """One family's address: the static one, else the sharing group's, else held, else new."""
        static = wishes.statics.get(family)
        keep = None
        if existing is not None and static in (None, existing):
            keep = self._keepable(me, existing, wishes.named)
        kept = existing if keep is not None else None
        if static is not None:
            wanted: IP | None = static
        else:
            wanted = self._group_address(me, family, kept, wishes.named)
        if kept is not None and keep is not None and wanted in (None, kept):
            return _Choice(kept, keep)
        if wanted is None:
            return _Choice(self._allocate(request, family, wishes.named))
        if static is not None:
            self._check_static(request, static, wishes.named)
        return _Choice(wanted, self._claim(me, wanted, may_displace=False))

    def _keep(
        self, me: _Holder, current: Mapping[int, IP], wishes: _Wishes | None
    ) -> dict[int, _Choice]:
        """Held addresses that survive a failed request; any still in a pool if it is invalid."""
        kept: dict[int, _Choice] = {}
        for family in wishes.families if wishes else tuple(current):
            ip = current.get(family)
            if ip is None or (wishes is not None and wishes.statics.get(family, ip) != ip):
                continue
            displace = self._keepable(me, ip, wishes.named if wishes else None)
            if displace is not None:
                kept[family] = _Choice(ip, displace)
        return kept

    def _keepable(
        self, me: _Holder, ip: IP, named: tuple[Pool, ...] | None
    ) -> tuple[ServiceKey, ...] | None:
        """Who must be displaced for ``me`` to keep ``ip``, or None when it cannot."""
        if not self._containing(ip) or (
            named is not None and not any(p.contains(ip) for p in named)
        ):
            return None
        try:
            return self._claim(me, ip, may_displace=True)
        except _Refusal:
            return None

    def _claim(self, me: _Holder, ip: IP, *, may_displace: bool) -> tuple[ServiceKey, ...]:
        """Holders that must give ``ip`` up for ``me``; refuses when one of them may keep it."""
        if ip in self._blocked:
            raise _Refusal(Reason.ADDRESS_IN_USE, f"{ip} is already used by {self._blocked[ip]}")
        rivals = [
            self._holders[k]
            for k in self._owners.get(ip, ())
            if k != me.key and not me.can_share(self._holders[k])
        ]
        if not rivals:
            return ()
        if may_displace and all(r.seniority > me.seniority for r in rivals):
            return tuple(r.key for r in rivals)
        rival = min(rivals, key=lambda r: r.seniority)
        if me.group is not None and me.group == rival.group:
            ports = ", ".join(sorted(str(p) for p in me.ports & rival.ports))
            raise _Refusal(
                Reason.PORT_CONFLICT,
                f'{ip} is shared under sharing key "{me.sharing_key}" with Service {rival.key}, '
                f"which also uses port {ports}",
            )
        raise _Refusal(Reason.ADDRESS_IN_USE, f"{ip} is already used by Service {rival.key}")

    def _group_address(
        self, me: _Holder, family: int, own: IP | None, named: tuple[Pool, ...] | None
    ) -> IP | None:
        """The address of this family held by the oldest member of the Service's sharing group."""
        if me.group is None:
            return None
        candidates = [(me.seniority, own)] if own is not None else []
        for key in self._groups.get(me.group, ()):
            holder = self._holders[key]
            candidates.extend(
                (holder.seniority, ip)
                for ip in holder.addresses
                if key != me.key
                and ip.family == family
                and (named is None or any(p.contains(ip) for p in named))
            )
        return min(candidates)[1] if candidates else None

    def _check_static(
        self, request: ServiceRequest, ip: IP, named: tuple[Pool, ...] | None
    ) -> None:
        """Refuse a static address outside every pool this Service may use."""
        reasons = []
        waiting = False
        for pool in self._by_priority():
            if not pool.contains(ip):
                continue
            waiting = waiting or (pool.offers(ip) and self._protecting(pool, request, named))
            why = self._unusable(pool, request, named)
            if why is None and pool.offers(ip):
                return
            reasons.append(f'pool "{pool.name}" {why or _NOT_OFFERED}')
        if not reasons:
            raise _Refusal(Reason.ADDRESS_NOT_IN_POOL, f"{ip} is not inside any IPPool")
        where = "; ".join(reasons)
        message = f"{ip} cannot be handed out: {where}"
        raise _Refusal(Reason.ADDRESS_NOT_IN_POOL, message, waiting=waiting)

    def _unusable(
        self, pool: Pool, request: ServiceRequest, named: tuple[Pool, ...] | None
    ) -> str | None:
        """Why this Service may get no new address from the pool, or None when it may."""
        if named is not None and pool not in named:
            return "is not named in lbipam.io/pool"
        if named is None and not pool.accepts(request.labels, request.namespace_labels):
            return "has selectors that do not match this Service"
        state, why = self._state(pool)
        return None if state is PoolState.READY else why

    def _allocate(self, request: ServiceRequest, family: int, named: tuple[Pool, ...] | None) -> IP:
        """Lowest free address of the first usable pool that has one."""
        candidates = (
            named if named is not None else [p for p in self._by_priority() if p.spec.auto_assign]
        )
        usable = [
            p
            for p in candidates
            if family in p.ranges and self._unusable(p, request, named) is None
        ]
        for pool in usable:
            ip = pool.lowest_free(family)
            if ip is not None:
                return ip
        waiting = any(
            family in p.ranges and self._protecting(p, request, named) for p in candidates
        )
        if usable:
            raise _Refusal(
                Reason.POOL_EXHAUSTED,
                f"no free {family_name(family)} address in {_pool_list(p.name for p in usable)}",
                waiting=waiting,
            )
        lacking = f"has no {family_name(family)} addresses"
        why = [
            f'pool "{p.name}" {self._unusable(p, request, named) or lacking}'
            for p in candidates
            if named is not None or p.accepts(request.labels, request.namespace_labels)
        ]
        scope = "lbipam.io/pool" if named is not None else "autoAssign pools matching this Service"
        detail = f" ({'; '.join(why)})" if why else ""
        raise _Refusal(
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
        return self._state(pool)[0] is PoolState.PROTECTING

    def _commit(
        self,
        request: ServiceRequest,
        me: _Holder,
        choices: Mapping[int, _Choice],
        held: list[IP],
        named: tuple[Pool, ...] | None,
        refusal: _Refusal | None,
        note: str,
    ) -> Outcome:
        for choice in choices.values():
            self._displace(choice.displace, choice.ip)
        known = self._holders.get(request.key)
        final = tuple(choice.ip for choice in choices.values())
        before = dict.fromkeys([*(known.addresses if known else ()), *held])
        if held and not final:
            self._bare[request.key] = me.shown_terms
        self._store(replace(me, addresses=final))
        pools = tuple(self._pool_of(ip, request, named) for ip in final)
        described = ", ".join(
            f'{ip} from pool "{pool}"' for ip, pool in zip(final, pools, strict=True)
        )
        if refusal is None:
            reason, message = Reason.ALLOCATED, "; ".join(filter(None, [described, note]))
        else:
            reason = refusal.reason
            message = f"{note}; keeping {described}" if final else note
        released = [ip for ip in before if ip not in final]
        revoked = {
            str(ip): why
            for ip in released
            if (why := self._taken_away(request, me, known, ip, held, final))
        }
        return Outcome(
            addresses=tuple(str(ip) for ip in final),
            pools=pools,
            reason=reason,
            message=message,
            allocated=tuple(str(ip) for ip in final if ip not in held),
            released=tuple(str(ip) for ip in released),
            revoked=revoked,
            displaced=tuple(sorted({k for c in choices.values() for k in c.displace})),
            followers=self._followers(me, final)
            if set(final) != set(before) or (known is not None and known.group != me.group)
            else (),
            waiting=refusal is not None and refusal.waiting,
        )

    def _taken_away(
        self,
        request: ServiceRequest,
        me: _Holder,
        known: _Holder | None,
        ip: IP,
        held: Sequence[IP],
        final: tuple[IP, ...],
    ) -> str | None:
        """Why a Service lost an address it did not ask to lose; None when it asked.

        Leaving its named pools, or following its sharing group, counts only while its
        annotations are those the address was granted under.
        """
        pools, sharing_key = known.terms(ip, held) if known else me.shown_terms
        if not self._containing(ip):
            return f"{ip} is no longer in any pool"
        if ip in self._blocked:
            return f"{ip} is already used by {self._blocked[ip]}"
        rivals = [
            self._holders[k]
            for k in self._owners.get(ip, ())
            if k != me.key and not me.can_share(self._holders[k])
        ]
        # Held by the group it left: as asked.
        left = (
            (me.key.namespace, sharing_key) if sharing_key not in (None, me.sharing_key) else None
        )
        if rivals and not (left and all(r.group == left for r in rivals)):
            return f"{ip} is held by the older Service {', '.join(str(r.key) for r in rivals)}"
        if pools != me.pools:
            return None
        if self._outside_named(me, ip):
            named = (name for name in me.pools if name in self._pools)
            return f"{ip} is no longer in {_pool_list(named)}, which lbipam.io/pool names"
        if sharing_key != me.sharing_key:
            return None
        try:
            static = ip.family in _statics(request)
        except _Refusal:
            static = True  # an invalid request: its author is changing it
        now = next((new for new in final if new.family == ip.family), None)
        shared = now is not None and any(k != me.key for k in self._owners.get(now, ()))
        if me.group is not None and shared and not static:
            return f'{ip}: the Services sharing key "{me.sharing_key}" moved to {now}'
        return None

    def _pool_of(self, ip: IP, request: ServiceRequest, named: tuple[Pool, ...] | None) -> str:
        """The pool to credit: the first this Service could allocate from, else the oldest."""
        containing = self._containing(ip)
        usable = (p for p in self._by_priority() if p in containing)
        pool = next((p for p in usable if self._unusable(p, request, named) is None), None)
        return (pool or min(containing, key=lambda p: p.spec.seniority)).name


def _parse_held(texts: Iterable[str]) -> list[IP]:
    """Held addresses we can read, first per family; garbage in status is simply not held."""
    result: dict[int, IP] = {}
    for text in texts:
        try:
            ip = parse_address(text)
        except ValueError:
            continue
        result.setdefault(ip.family, ip)
    return list(result.values())


def _statics(request: ServiceRequest) -> dict[int, IP]:
    statics: dict[int, IP] = {}
    for text in (t for t in request.requested_ips if t.strip()):
        ip = _parse_static("lbipam.io/ips", text)
        if ip.family in statics:
            raise _Refusal(
                Reason.INVALID_REQUEST,
                f"lbipam.io/ips lists two {family_name(ip.family)} addresses "
                f"({statics[ip.family]}, {ip}); give at most one per family",
            )
        statics[ip.family] = ip
    if request.load_balancer_ip and request.load_balancer_ip.strip():
        ip = _parse_static("spec.loadBalancerIP", request.load_balancer_ip)
        other = statics.setdefault(ip.family, ip)
        if other != ip:
            raise _Refusal(
                Reason.INVALID_REQUEST,
                f"spec.loadBalancerIP {ip} and lbipam.io/ips {other} disagree; drop one of them",
            )
    return statics


def _parse_static(where: str, text: str) -> IP:
    try:
        return parse_address(text)
    except ValueError as error:
        raise _Refusal(Reason.INVALID_REQUEST, f"{where}: {error}") from None


def _pool_list(names: Iterable[str]) -> str:
    quoted = [f'"{name}"' for name in names]
    return ("pool " if len(quoted) == 1 else "pools ") + ", ".join(quoted)
