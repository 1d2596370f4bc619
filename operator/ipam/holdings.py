"""Who holds which address: holders, owners, sharing groups, blocked addresses, bare Services,
and addresses held after release for the Service that let them go."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import combinations

from .addresses import IP, parse_address
from .catalog import Catalog
from .durations import stamp
from .pool import Pool
from .requests import Port, ServiceKey
from .sharing import GroupBook, consenting, may_share

Terms = tuple[tuple[str, ...], str | None]  # lbipam.io/pool names, sharing key
NO_TERMS: Terms = ((), None)  # most Services': one tuple for all of them


@dataclass(frozen=True, slots=True)
class Holder:
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
    granted: Terms = NO_TERMS
    # ...and those the status's addresses were granted under: a decision whose write failed
    # (409) is not the status's yet.
    shown_terms: Terms = NO_TERMS
    # Other namespaces it consents to share with (lbipam.io/sharing-cross-namespace).
    share_with: frozenset[str] = frozenset()

    def can_share(self, other: Holder) -> bool:
        return may_share(self, other)


@dataclass(frozen=True, slots=True)
class Hold:
    """An address a Service let go, kept for its namespace/name while its pool's releaseHold
    runs: ``since`` is when it was let go, in seconds since the epoch."""

    key: ServiceKey
    since: float


class HoldBook:
    """Addresses held after release, by address and by the Service they are held for, and
    when each hold ends. Read by all; changed only by `Holdings`, which keeps the pools'
    counts in step."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.by_ip: dict[IP, Hold] = {}
        self._by_key: dict[ServiceKey, set[IP]] = {}

    def get(self, ip: IP) -> Hold | None:
        return self.by_ip.get(ip)

    def of(self, key: ServiceKey) -> dict[IP, Hold]:
        """What is held for the Service that a pool may still hand out (see `end`)."""
        return {
            ip: self.by_ip[ip] for ip in self._by_key.get(key, ()) if self.offering(ip) is not None
        }

    def end(self, ip: IP, hold: Hold) -> float:
        """When the hold ends: the releaseHold the address's pool has now, from its release;
        at once when no pool may hand it out any more (it left them, or became a Node's
        address or a ServiceCIDR's: given back, it would break the Node or the ClusterIP)."""
        pool = self.offering(ip)
        return hold.since + (pool.spec.release_hold if pool is not None else 0.0)

    def offering(self, ip: IP) -> Pool | None:
        """The oldest pool containing the address, if it may hand it out."""
        pool = self._catalog.oldest_containing(ip)
        return pool if pool is not None and pool.offers(ip) else None

    def describe(self, ip: IP, hold: Hold) -> str:
        return (
            f"{ip} is held for Service {hold.key} after its release, "
            f"until {stamp(self.end(ip, hold))} (releaseHold)"
        )

    def ends_in(self, pool: Pool, family: int | None = None) -> list[float]:
        """When each hold on an address the pool offers (of one family, if given) ends: those
        it counts as allocated."""
        return [
            self.end(ip, hold)
            for ip, hold in self.by_ip.items()
            if pool.offers(ip) and family in (None, ip.family)
        ]

    def note(self, pools: Iterable[Pool], family: int) -> str:
        """How many addresses of the family the pools hold after release, and when the first
        hold ends; "" when none."""
        ends = [end for pool in pools for end in self.ends_in(pool, family)]
        return held_after_release(len(ends), min(ends)) if ends else ""

    def add(self, ip: IP, hold: Hold) -> None:
        self.by_ip[ip] = hold
        self._by_key.setdefault(hold.key, set()).add(ip)

    def pop(self, ip: IP) -> Hold | None:
        hold = self.by_ip.pop(ip, None)
        if hold is not None:
            keys = self._by_key[hold.key]
            keys.discard(ip)
            if not keys:
                del self._by_key[hold.key]
        return hold

    def clear(self) -> None:
        self.by_ip.clear()
        self._by_key.clear()

    def check(self) -> None:
        for ip, hold in self.by_ip.items():
            assert ip in self._by_key.get(hold.key, ()), f"{ip} missing from {hold.key}'s holds"
        assert sum(map(len, self._by_key.values())) == len(self.by_ip), "stray hold index"


class NamespaceBook:
    """Namespace -> the addresses its Services hold (an address shared across namespaces is
    in each)."""

    def __init__(self) -> None:
        self._ips: dict[str, set[IP]] = {}

    def get(self, namespace: str) -> frozenset[IP]:
        return frozenset(self._ips.get(namespace, ()))

    def names(self) -> list[str]:
        return sorted(self._ips)

    def add(self, namespace: str, ip: IP) -> None:
        self._ips.setdefault(namespace, set()).add(ip)

    def discard(self, namespace: str, ip: IP) -> None:
        held = self._ips[namespace]
        held.discard(ip)
        if not held:
            del self._ips[namespace]

    def clear(self) -> None:
        self._ips.clear()

    def check(self, owners: Mapping[IP, tuple[ServiceKey, ...]]) -> None:
        expected: dict[str, set[IP]] = {}
        for ip, keys in owners.items():
            for key in keys:
                expected.setdefault(key.namespace, set()).add(ip)
        assert expected == self._ips, "the addresses by namespace are out of step"


class Holdings:
    """Every address held, by whom, and the pools' free intervals kept in step with them."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        # Services holding at least one address; a holder's addresses are keys of _owners.
        self._holders: dict[ServiceKey, Holder] = {}
        # Services a decision left with no address while their status may still show some:
        # the terms those were granted under (a Holder's shown_terms).
        self._bare: dict[ServiceKey, Terms] = {}
        # Address -> its holders: one, or several that can all share it; never empty.
        self._owners: dict[IP, tuple[ServiceKey, ...]] = {}
        # Holders by sharing key, and namespace or consent to others.
        self._groups = GroupBook()
        # Addresses held outside lbipam (a ClusterIP, another controller) -> who holds them.
        # Taken in every pool, never handed out; learned when a claim is refused.
        self._blocked: dict[IP, str] = {}
        self._by_namespace = NamespaceBook()
        # Addresses held after release -> for whom, since when; taken in every pool like
        # blocked ones. A hold ends at since + the releaseHold of the oldest pool containing it.
        self.held = HoldBook(catalog)
        # Grows with every change of holdings.
        self.changes = 0

    # ---- reading -----------------------------------------------------------------------

    def holder(self, key: ServiceKey) -> Holder | None:
        return self._holders.get(key)

    def owners(self, ip: IP) -> tuple[ServiceKey, ...]:
        return self._owners.get(ip, ())

    def blocker(self, ip: IP) -> str | None:
        """Who outside lbipam holds the address, if anyone."""
        return self._blocked.get(ip)

    def in_namespace(self, namespace: str) -> frozenset[IP]:
        """The addresses the namespace's Services hold, each once however many share it."""
        return self._by_namespace.get(namespace)

    def namespaces(self) -> list[str]:
        return self._by_namespace.names()

    def taken(self) -> list[IP]:
        """Every address a pool must not hand out: held here, after release or outside."""
        return [*self._owners, *self._blocked, *self.held.by_ip]

    def rivals(self, me: Holder, ip: IP) -> list[Holder]:
        """The other holders of ``ip`` that may not share it with ``me``."""
        return [
            self._holders[k]
            for k in self._owners.get(ip, ())
            if k != me.key and not me.can_share(self._holders[k])
        ]

    def group_members(self, me: Holder) -> list[Holder]:
        """The holders ``me`` consents with under its sharing key, each way: its sharing group,
        ``me`` included if it holds anything."""
        found = (self._holders[key] for key in self._groups.candidates(me))
        return [holder for holder in found if consenting(me, holder)]

    def followers(self, me: Holder, final: tuple[IP, ...]) -> tuple[ServiceKey, ...]:
        """The other members of the holder's sharing group whose addresses differ from it."""
        return tuple(
            sorted(
                holder.key
                for holder in self.group_members(me)
                if holder.key != me.key and set(holder.addresses) != set(final)
            )
        )

    def held_in(self, pool: Pool) -> tuple[ServiceKey, ...]:
        inside = pool.contains
        return tuple(sorted({k for ip, keys in self._owners.items() if inside(ip) for k in keys}))

    # ---- changing ----------------------------------------------------------------------

    def store(self, holder: Holder) -> None:
        """Record a holder's addresses, reserving and freeing them in every pool they lie in."""
        old = self._holders.pop(holder.key, None)
        old_addresses = old.addresses if old else ()
        if old_addresses != holder.addresses:
            self.changes += 1
        if old is not None:
            self._groups.discard(old)
        for ip in old_addresses:
            if ip not in holder.addresses:
                self._drop_owner(holder.key, ip)
        for ip in holder.addresses:
            if ip not in old_addresses:
                self._add_owner(holder.key, ip)
        if holder.addresses:
            self._holders[holder.key] = holder
            self._groups.add(holder)

    def _add_owner(self, key: ServiceKey, ip: IP) -> None:
        owners = self._owners.get(ip)
        self._by_namespace.add(key.namespace, ip)
        if owners is not None:
            self._owners[ip] = (*owners, key)
            return
        if self._unhold(ip) is None:  # a held address is taken in its pools already
            for pool in self._catalog.containing(ip):
                pool.take(ip)
        self._owners[ip] = (key,)

    def _drop_owner(self, key: ServiceKey, ip: IP) -> None:
        """Forget one owner; the last one gone frees the address in its pools."""
        owners = tuple(k for k in self._owners[ip] if k != key)
        if all(k.namespace != key.namespace for k in owners):
            self._by_namespace.discard(key.namespace, ip)
        if owners:
            self._owners[ip] = owners
            return
        del self._owners[ip]
        for pool in self._catalog.containing(ip):
            pool.give_back(ip)

    def displace(self, keys: Iterable[ServiceKey], ip: IP) -> None:
        """The holders lose ``ip``, keeping their other addresses."""
        for key in keys:
            holder = self._holders[key]
            self.store(replace(holder, addresses=tuple(a for a in holder.addresses if a != ip)))

    def left_bare(self, key: ServiceKey, terms: Terms) -> None:
        """A decision left the Service with nothing while its status shows addresses."""
        self._bare[key] = terms

    def pop_bare(self, key: ServiceKey) -> Terms | None:
        return self._bare.pop(key, None)

    def release(self, key: ServiceKey, now: float) -> tuple[str, ...]:
        """Forget the Service; returns the addresses nobody holds any more. Those of a pool
        with a releaseHold are held for it from ``now`` and not returned."""
        self._bare.pop(key, None)
        holder = self._holders.get(key)
        if holder is None:
            return ()
        freed = [ip for ip in holder.addresses if len(self._owners[ip]) == 1]
        self.store(replace(holder, addresses=()))
        return tuple(str(ip) for ip in freed if not self.let_go(ip, key, now))

    def let_go(self, ip: IP, key: ServiceKey, now: float) -> bool:
        """``key`` let go of the free address at ``now``: held for it when its pool has a
        releaseHold and may still hand it out. Whether it is held now."""
        pool = self.held.offering(ip)
        return pool is not None and pool.spec.release_hold > 0 and self.keep(ip, Hold(key, now))

    def keep(self, ip: IP, hold: Hold) -> bool:
        """Hold a free address for ``hold.key``; False when it is not free or in no pool."""
        if ip in self._owners or ip in self._blocked or ip in self.held.by_ip:
            return False
        pools = self._catalog.containing(ip)
        if not pools:
            return False
        for pool in pools:
            pool.take(ip)
        self.held.add(ip, hold)
        self.changes += 1
        return True

    def end_holds(self, now: float) -> tuple[ServiceKey, ...]:
        """End the holds whose time is up (or whose address left every pool); for whom."""
        ended = [ip for ip, hold in self.held.by_ip.items() if self.held.end(ip, hold) <= now]
        keys = {hold.key for ip in ended if (hold := self._unhold(ip)) is not None}
        for ip in ended:
            for pool in self._catalog.containing(ip):
                pool.give_back(ip)
        return tuple(sorted(keys))

    def _unhold(self, ip: IP) -> Hold | None:
        """Forget the hold on ``ip``, leaving the address taken in its pools."""
        hold = self.held.pop(ip)
        if hold is not None:
            self.changes += 1
        return hold

    def block(self, ip: IP, holder: str) -> tuple[ServiceKey, ...]:
        """The address is held outside lbipam: nobody gets it; returns who must give it up."""
        losers = self._owners.get(ip, ())
        self.displace(losers, ip)
        if self._unhold(ip) is not None:
            for pool in self._catalog.containing(ip):
                pool.give_back(ip)
        self._blocked[ip] = holder
        for pool in self._catalog.containing(ip):
            pool.take(ip)
        self.changes += 1
        return losers

    def unblock(self, ip: IP) -> bool:
        """Its outside holder let it go; whether it was blocked."""
        if self._blocked.pop(ip, None) is None:
            return False
        if ip not in self._owners:
            for pool in self._catalog.containing(ip):
                pool.give_back(ip)
        self.changes += 1
        return True

    def pool_changed(self, previous: Pool) -> tuple[set[ServiceKey], set[ServiceKey]]:
        """After ``previous`` was replaced or removed: holders revoked (their address left every
        pool; they lose it now) and holders moving (it left the pools they name)."""
        revoked: set[ServiceKey] = set()
        moving: set[ServiceKey] = set()
        for ip in [ip for ip in self._owners if previous.contains(ip)]:
            owners = self._owners[ip]
            if not self._catalog.containing(ip):
                revoked.update(owners)
                self.displace(owners, ip)
            else:
                outside = self._catalog.outside_named
                moving.update(k for k in owners if outside(self._holders[k].pools, ip))
        return revoked, moving

    def clear(self) -> None:
        self._holders.clear()
        self._owners.clear()
        self._groups.clear()
        self._blocked.clear()
        self._bare.clear()
        self._by_namespace.clear()
        self.held.clear()
        self.changes += 1

    def restore(self, me: Holder, held: Iterable[IP]) -> bool:
        """Record what a Service's status shows, oldest Service first; False when an address of
        it is held by an older one it may not share with. Addresses outside every pool are
        left out."""
        kept: dict[int, IP] = {}
        whole = True
        for ip in held:
            if ip.family in kept or not self._catalog.containing(ip):
                continue
            if all(me.can_share(self._holders[k]) for k in self._owners.get(ip, ())):
                kept[ip.family] = ip
            else:
                whole = False
        self.store(replace(me, addresses=tuple(kept.values())))
        return whole

    # ---- invariants --------------------------------------------------------------------

    def check(self) -> None:
        """Raise AssertionError naming the first broken invariant between the indexes and the
        pools' free counts. For tests: it walks everything."""
        self._check_owners()
        self._groups.check(self._holders)
        for key in self._holders:
            assert key not in self._bare, f"{key} holds addresses and is also recorded bare"
        for ip, outsider in self._blocked.items():
            assert ip not in self._owners, f"{ip} is blocked by {outsider} and held by a Service"
        for ip in self.held.by_ip:
            assert ip not in self._owners and ip not in self._blocked, f"{ip} held twice"
        self.held.check()
        self._check_pools()
        self._by_namespace.check(self._owners)

    def _check_owners(self) -> None:
        for key, holder in self._holders.items():
            assert holder.key == key, f"holder {holder.key} is recorded under {key}"
            assert holder.addresses, f"{key} is recorded as a holder of nothing"
            families = [ip.family for ip in holder.addresses]
            assert len(set(families)) == len(families), f"{key} holds two of a family"
            for ip in holder.addresses:
                assert key in self._owners.get(ip, ()), f"{key} holds {ip} but is not its owner"
        for ip, keys in self._owners.items():
            assert keys and len(set(keys)) == len(keys), f"{ip} has owners {keys}"
            for key in keys:
                owner = self._holders.get(key)
                assert owner is not None and ip in owner.addresses, f"{key} owns {ip}, holds not"
            for a, b in combinations(keys, 2):
                assert self._holders[a].can_share(self._holders[b]), f"{a}, {b} share {ip}"

    def _check_pools(self) -> None:
        taken = self.taken()
        for pool in self._catalog.by_priority():
            for counts in pool.counts():
                used = sum(1 for ip in taken if ip.family == counts.family and pool.offers(ip))
                assert counts.allocated == used, (
                    f'pool "{pool.name}" counts {counts.allocated} IPv{counts.family} addresses '
                    f"used, but {used} it offers are held or blocked"
                )


def held_after_release(count: int, first_end: float) -> str:
    """The note a full pool's messages add: how many addresses are held, and until when."""
    return f"; {count} held after release, the first until {stamp(first_end)}"


def parse_held(texts: Iterable[str]) -> list[IP]:
    """Held addresses we can read, first per family; garbage in status is simply not held."""
    result: dict[int, IP] = {}
    for text in texts:
        try:
            ip = parse_address(text)
        except ValueError:
            continue
        result.setdefault(ip.family, ip)
    return list(result.values())
