"""Pools' perNamespaceLimit: how many addresses a namespace holds from a pool, and whether one
more fits. A shared address counts once."""

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
        self._held = set(holdings.in_namespace(me.namespace))
        # The Service's own addresses nobody shares: each goes or stays when its family is
        # decided, so it does not count against that decision.
        self._alone = {f: ip for f, ip in current.items() if holdings.owners(ip) == (me,)}

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
        named = [
            f"{ip} ({', '.join(str(k) for k in self._holdings.owners(ip))})" for ip in held[:_NAMED]
        ]
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


def over_limit(pool: Pool, holdings: Holdings) -> tuple[tuple[str, int], ...]:
    """Namespaces holding more of the pool than its limit allows (it was lowered), and how
    many they hold."""
    limit = pool.spec.per_namespace_limit
    if limit is None:
        return ()
    counts = (
        (namespace, sum(1 for ip in holdings.in_namespace(namespace) if pool.contains(ip)))
        for namespace in holdings.namespaces()
    )
    return tuple((namespace, count) for namespace, count in counts if count > limit)
