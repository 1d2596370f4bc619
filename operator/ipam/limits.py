"""Pools' perNamespaceLimit: how many addresses a namespace holds from a pool, and whether one
more fits. A shared address counts once; an address held after release (releaseHold) counts
for the namespace it is held for, since it comes back to that namespace's Service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .addresses import IP
from .holdings import Holdings
from .pool import Pool
from .requests import Reason, Refusal, ServiceKey

# Holders a refusal names; the rest are counted.
_NAMED = 10


class Quota:
    """The addresses a Service's namespace holds, as the plan being made for it changes them."""

    def __init__(self, holdings: Holdings, me: ServiceKey, current: Mapping[int, IP]) -> None:
        self._holdings = holdings
        self._namespace = me.namespace
        self._held = set(holdings.in_namespace(me.namespace)) | held_for(holdings, me.namespace)
        # The Service's own addresses nobody shares, and those held for it after release:
        # each goes or stays when its family is decided, so it does not count against that
        # decision.
        self._alone = {f: ip for f, ip in current.items() if _own(holdings, me, ip)}

    def room(self, pool: Pool, family: int) -> bool:
        """Whether the namespace may take one more address of the pool."""
        limit = pool.spec.per_namespace_limit
        return limit is None or len(self._counted(pool, family)) < limit

    def check(self, ip: IP, family: int, pools: Iterable[Pool]) -> None:
        """Refuse an address the namespace does not hold yet when a pool it lies in is full."""
        if ip in self._held:
            return  # shared within the namespace: counted once, already
        for pool in pools:
            if pool.contains(ip) and not self.room(pool, family):
                raise self.refusal(pool, family)

    def charge(self, family: int, ip: IP) -> None:
        """The plan gives the Service ``ip`` for the family."""
        alone = self._alone.pop(family, None)
        if alone is not None:
            self._held.discard(alone)
        self._held.add(ip)

    def refusal(self, pool: Pool, family: int) -> Refusal:
        held = self._counted(pool, family)
        named = [f"{ip} ({_holders(self._holdings, ip)})" for ip in held[:_NAMED]]
        more = f" and {len(held) - _NAMED} more" if len(held) > _NAMED else ""
        return Refusal(
            Reason.NAMESPACE_LIMIT_REACHED,
            f'namespace "{self._namespace}" holds {len(held)} addresses of pool "{pool.name}", '
            f"its perNamespaceLimit is {pool.spec.per_namespace_limit}: "
            f"{', '.join(named)}{more}",
        )

    def _counted(self, pool: Pool, family: int) -> list[IP]:
        alone = self._alone.get(family)
        return sorted(ip for ip in self._held if ip != alone and pool.contains(ip))


def held_for(holdings: Holdings, namespace: str) -> set[IP]:
    """The addresses held after release for Services of the namespace."""
    return {ip for ip, hold in holdings.held.by_ip.items() if hold.key.namespace == namespace}


def _own(holdings: Holdings, me: ServiceKey, ip: IP) -> bool:
    """The Service alone holds the address, or it is held for the Service after release."""
    hold = holdings.held.get(ip)
    return holdings.owners(ip) == (me,) or (hold is not None and hold.key == me)


def _holders(holdings: Holdings, ip: IP) -> str:
    hold = holdings.held.get(ip)
    if hold is not None:
        return f"held for {hold.key} after release"
    # Nobody holds it yet: the plan gave it to this Service for its other family.
    return ", ".join(str(k) for k in holdings.owners(ip)) or "this Service's other family"


def over_limit(pool: Pool, holdings: Holdings) -> tuple[tuple[str, int], ...]:
    """Namespaces holding more of the pool than its limit allows (it was lowered), and how
    many they hold, holds after release included."""
    limit = pool.spec.per_namespace_limit
    if limit is None:
        return ()
    namespaces = {
        *holdings.namespaces(),
        *(hold.key.namespace for hold in holdings.held.by_ip.values()),
    }
    counts = (
        (
            namespace,
            sum(
                1
                for ip in holdings.in_namespace(namespace) | held_for(holdings, namespace)
                if pool.contains(ip)
            ),
        )
        for namespace in sorted(namespaces)
    )
    return tuple((namespace, count) for namespace, count in counts if count > limit)
