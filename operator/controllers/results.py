"""What a controller's work leaves to do next: the one result type the dispatcher acts on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from lbipam.ipam.requests import ServiceKey


@dataclass
class Next:
    """Services to reconcile again, and whether pending ones may now get an address.

    Like MetalLB's SyncState, but filled as the work goes: what a reconcile set in motion
    before failing half-way (a Service it displaced) is acted on all the same.
    """

    # Reconciled again, in this order; what `requeue` was given first goes first.
    services: list[ServiceKey] = field(default_factory=list)
    # Tried again oldest first: their namespace's labels changed, or a Service they could
    # share an address with did.
    retry: list[ServiceKey] = field(default_factory=list)
    # An address may have been freed: every pending Service tries again.
    pending: bool = False
    # Pools changed: PreferDualStack Services lacking a family try again too.
    pools_changed: bool = False

    def requeue(self, keys: Iterable[ServiceKey]) -> None:
        self.services.extend(keys)

    def retry_pending(self, *, pools_changed: bool = False) -> None:
        self.pending = True
        self.pools_changed |= pools_changed


class Scheduler(Protocol):
    """Where a controller that does not own Services hands what it leaves them to do."""

    def schedule(self, then: Next) -> None: ...
