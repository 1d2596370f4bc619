"""All pools and every Service holding an address: the one door to the catalog, the holdings,
placement and verdicts, which it runs in order and whose plans it commits."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from .addresses import IP, parse_address
from .catalog import Catalog, ClusterRange, PoolState, PoolSummary, RangeKind, ReservedEntry
from .holdings import Hold, Holder, Holdings, parse_held
from .limits import over_limit
from .placement import Placer, Plan
from .pool import Pool, PoolSpec
from .requests import Outcome, ServiceKey, ServiceRequest
from .verdict import Verdict, applicant, granted, requested

__all__ = [
    "ClusterRange",
    "PoolChange",
    "PoolState",
    "PoolSummary",
    "RangeKind",
    "Registry",
    "ReservedHolder",
]


class ReservedHolder(NamedTuple):
    """A Service holding an address the cluster uses itself: it keeps it, and is told."""

    key: ServiceKey
    address: str
    source: ClusterRange


@dataclass(frozen=True)
class PoolChange:
    revoked: tuple[ServiceKey, ...]  # lost an address that left every pool
    conflicts: tuple[str, ...]
    # Hold an address that left the pools they name: still theirs until they move.
    moving: tuple[ServiceKey, ...] = ()
    # Hold an address the cluster just started using itself: they keep it.
    reserved_holders: tuple[ReservedHolder, ...] = ()


class Registry:
    """The in-memory truth between the cluster's IPPools and Services' status addresses."""

    def __init__(self) -> None:
        self._catalog = Catalog()
        self._holdings = Holdings(self._catalog)
        self._placer = Placer(self._catalog, self._holdings)
        self._verdict = Verdict(self._catalog, self._holdings, self._placer)

    @property
    def changes(self) -> int:
        """Grows with every change of pools or holdings: readers compare it to know when to
        look."""
        return self._catalog.changes + self._holdings.changes

    # ---- pools -------------------------------------------------------------------------

    def apply_pool(self, spec: PoolSpec) -> PoolChange:
        """Create or update a pool; a bad spec is recorded as the pool's error, never raised."""
        previous = self._catalog.find(spec.name)
        if previous is not None and previous.spec == spec:
            # Status writes echo back as pool events; rebuilding would cost O(holders) each.
            return PoolChange((), ())
        self._catalog.put(spec, self._holdings.taken())
        return self._pools_changed(previous)

    def reserve(self, kind: RangeKind, ranges: Mapping[str, Sequence[str]]) -> PoolChange:
        """Set every range of one kind the cluster uses itself; pools stop offering them.

        Holders inside them keep their addresses, as with any address a pool still covers;
        those inside a range new here come back in `reserved_holders`.
        """
        before = self._catalog.reserved_entries()
        if not self._catalog.reserve(kind, ranges):
            return PoolChange((), ())
        self._catalog.rebuild(self._holdings.taken())
        change = self._pools_changed(None)
        added = self._catalog.reserved_entries() - before
        return replace(change, reserved_holders=self.reserved_holders(added))

    def reserved_holders(
        self, entries: Iterable[ReservedEntry] | None = None
    ) -> tuple[ReservedHolder, ...]:
        """Services holding an address inside `entries` (default: every reserved range)."""
        wanted = self._catalog.reserved_entries() if entries is None else set(entries)
        if not wanted:
            return ()
        held = sorted(ip for ip in self._holdings.taken() if self._holdings.owners(ip))
        found: set[ReservedHolder] = set()
        for source, family, (first, last) in wanted:
            start = bisect.bisect_left(held, IP(family, first))
            for ip in held[start : bisect.bisect_right(held, IP(family, last))]:
                found.update(ReservedHolder(k, str(ip), source) for k in self._holdings.owners(ip))
        return tuple(sorted(found))

    def remove_pool(self, name: str) -> PoolChange:
        return self._pools_changed(self._catalog.remove(name))

    def _pools_changed(self, previous: Pool | None) -> PoolChange:
        revoked: set[ServiceKey] = set()
        moving: set[ServiceKey] = set()
        if previous is not None:
            revoked, moving = self._holdings.pool_changed(previous)
        conflicts = self._catalog.changed()
        return PoolChange(tuple(sorted(revoked)), conflicts, tuple(sorted(moving)))

    def pool_summary(self, name: str) -> PoolSummary:
        summary = self._catalog.summary(name)
        pool = self._catalog.pool(name)
        summary = replace(summary, over_limit=over_limit(pool, self._holdings))
        ends = self._holdings.held.ends_in(pool)
        if not ends:
            return summary
        return replace(summary, held=len(ends), held_until=min(ends))

    def pool_names(self) -> list[str]:
        return self._catalog.names()

    def has_pool(self, name: str) -> bool:
        return self._catalog.has(name)

    def pool_of(self, address: str) -> str | None:
        """The oldest pool containing the address (the one not in conflict), if any."""
        try:
            pool = self._catalog.oldest_containing(parse_address(address))
        except ValueError:
            return None
        return pool.name if pool else None

    # ---- holdings ----------------------------------------------------------------------

    def block(self, address: str, holder: str) -> tuple[ServiceKey, ...]:
        """The address is held outside lbipam: nobody gets it; returns who must give it up."""
        return self._holdings.block(parse_address(address), holder)

    def unblock(self, address: str) -> bool:
        """Its outside holder let it go: the address may be handed out again. Whether it was
        blocked."""
        return self._holdings.unblock(parse_address(address))

    def adopt(self, key: ServiceKey, addresses: Iterable[str]) -> None:
        """The Service's status shows these, claimed for it (by another replica leading at
        once): what this replica recorded for it instead, in their families, gives way, so
        the next decision keeps them rather than writing its own back, over and over."""
        shown = {parse_address(address) for address in addresses}
        holder = self._holdings.holder(key)
        if holder is None:
            return
        families = {ip.family for ip in shown}
        lost = [ip for ip in holder.addresses if ip.family in families and ip not in shown]
        for ip in lost:
            self._holdings.displace([key], ip)

    def holders(self, pool: str) -> tuple[ServiceKey, ...]:
        return self._holdings.held_in(self._catalog.pool(pool))

    def held_by(self, key: ServiceKey) -> tuple[str, ...]:
        holder = self._holdings.holder(key)
        return tuple(str(ip) for ip in holder.addresses) if holder else ()

    def owners_of(self, address: str) -> tuple[ServiceKey, ...]:
        """The Services holding the address now (several only when they share it)."""
        try:
            return self._holdings.owners(parse_address(address))
        except ValueError:
            return ()

    def release(self, key: ServiceKey, now: float) -> tuple[str, ...]:
        """Forget the Service (let go at ``now``, in seconds since the epoch); returns the
        addresses nobody holds any more. Those of a pool with a releaseHold are held for its
        namespace/name instead, and not returned."""
        return self._holdings.release(key, now)

    # ---- holds after release -----------------------------------------------------------

    def hold_of(self, address: str) -> tuple[ServiceKey, float] | None:
        """For whom the address is held after release, and since when."""
        try:
            hold = self._holdings.held.get(parse_address(address))
        except ValueError:
            return None
        return None if hold is None else (hold.key, hold.since)

    def describe_hold(self, address: str) -> str | None:
        """For a user: for whom the address is held after release, and until when."""
        try:
            ip = parse_address(address)
        except ValueError:
            return None
        hold = self._holdings.held.get(ip)
        return None if hold is None else self._holdings.held.describe(ip, hold)

    def holds_after_release(self) -> list[tuple[str, str]]:
        """For a user: each address held after release, by address, with `describe_hold`'s
        words."""
        held = self._holdings.held
        return [(str(ip), held.describe(ip, held.by_ip[ip])) for ip in sorted(held.by_ip)]

    def restore_holds(self, holds: Iterable[tuple[str, ServiceKey, float]]) -> None:
        """Start-up, after `rebuild`: the holds the claims record (address, for whom, since);
        one on an address a Service holds or no pool contains is dropped."""
        for address, key, since in holds:
            try:
                self._holdings.keep(parse_address(address), Hold(key, since))
            except ValueError:
                continue

    def let_go_unseen(self, address: str, key: ServiceKey, now: float) -> bool:
        """The Service let go of the address while nobody watched (its claim outlived it):
        held for it from ``now`` when its pool has a releaseHold. Whether it is held now."""
        try:
            return self._holdings.let_go(parse_address(address), key, now)
        except ValueError:
            return False

    def end_holds(self, now: float) -> tuple[ServiceKey, ...]:
        """End the holds whose time is up at ``now``; returns for whom they were."""
        return self._holdings.end_holds(now)

    def rebuild(self, requests: Iterable[ServiceRequest]) -> tuple[ServiceKey, ...]:
        """Replace all holdings with what Services' statuses say; older wins a duplicate.

        Returns the Services that lost an address to an older one. Addresses outside every
        pool are not registered; the Service's next ensure() replaces them.
        """
        self._holdings.clear()
        self._catalog.forget_holdings()
        losers = {
            request.key
            for request in sorted(requests, key=lambda r: r.seniority)
            if not self._holdings.restore(requested(request), parse_held(request.held))
        }
        return tuple(sorted(losers))

    def check(self) -> None:
        """Raise AssertionError when the holdings and the pools disagree (for tests)."""
        self._holdings.check()

    # ---- Services ----------------------------------------------------------------------

    def ensure(self, request: ServiceRequest) -> Outcome:
        """Decide the Service's addresses now; calling again with the result changes nothing.

        On failure nothing new is handed out, but held addresses that are still valid are
        kept and reported in ``addresses`` (so a RequireDualStack Service whose IPv6 pool ran
        dry keeps serving on IPv4 while its condition says PoolExhausted).
        """
        held = parse_held(request.held)
        known = self._holdings.holder(request.key)
        me = applicant(request, known, held, self._holdings.pop_bare(request.key))
        # What is held for it after release comes back unasked where it holds nothing.
        kept = self._holdings.held.of(request.key)
        current = {ip.family: ip for ip in kept}
        current.update({ip.family: ip for ip in held})
        if known is not None:
            current.update({ip.family: ip for ip in known.addresses})
        plan = self._placer.place(request, me, current)
        # A family whose shown address it cannot keep falls back on what is held for it,
        # as the next decision (holding nothing of that family) would.
        fallback = {
            ip.family: ip
            for ip in kept
            if ip.family not in plan.choices and current.get(ip.family) != ip
        }
        if fallback:
            plan = self._placer.place(request, me, current | fallback)
        me = granted(me, known, plan, held)
        self._commit(me, plan, held)
        outcome = self._verdict.outcome(request, plan, me, known, held)
        final = {choice.ip for choice in plan.choices.values()}
        back = {str(ip): hold.since for ip, hold in kept.items() if ip in final}
        return replace(outcome, kept=back) if back else outcome

    def _commit(self, me: Holder, plan: Plan, held: Sequence[IP]) -> None:
        """Displace whom the plan displaces and give ``me`` the plan's addresses."""
        for choice in plan.choices.values():
            self._holdings.displace(choice.displace, choice.ip)
        final = tuple(choice.ip for choice in plan.choices.values())
        if held and not final:
            self._holdings.left_bare(me.key, me.shown_terms)
        self._holdings.store(replace(me, addresses=final))
