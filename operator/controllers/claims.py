"""Address claims: each address in a Service's status is also an IPAddress object.

The API server refuses a second IPAddress of one name, so no two Services can hold one
address even if lbipam's memory is wrong (two leaders, a bug), and an address the API
server's own allocator holds (a ClusterIP) is never handed out. A cluster-scoped IPAddress
cannot be owned by a namespaced Service (the garbage collector ignores such owners), so
claims whose Service let go are collected here: after each status write, at start-up and
by the periodic sweep.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lbipam.ha.term import Fenced
from lbipam.ipam.registry import Registry
from lbipam.ipam.requests import ServiceKey
from lbipam.kube.errors import is_status
from lbipam.kube.writer import Writer
from lbipam.objects import ClaimView, claim_view

log = logging.getLogger(__name__)
# Seconds a claim may go without its Service's status showing the address: the time between
# creating a claim and writing the status, with a wide margin.
CLAIM_GRACE = 60.0


@dataclass
class GivenBack:
    """What releasing claims left to do."""

    # An address a released claim had kept from another of our Services may be handed out.
    freed: bool = False
    # Sharers still holding an address whose claim did not pass to them: they must claim it.
    unclaimed: list[ServiceKey] = field(default_factory=list)


class AddressClaims:
    """Our IPAddress claims, by address; a no-op when claims are off."""

    def __init__(self, writer: Writer, registry: Registry, enabled: bool) -> None:
        self.writer = writer
        self.registry = registry
        self.enabled = enabled
        self._ours: dict[str, ClaimView] = {}
        # The addresses of _ours by parent: a Service that lets go drops all of its claims,
        # also those its status no longer shows (a type change clears status.loadBalancer).
        self._by_parent: dict[ServiceKey, set[str]] = {}

    def rebuild(self, claims: Iterable[ClaimView]) -> None:
        self._ours.clear()
        self._by_parent.clear()
        for claim in claims:
            # A claim with our label but no Service as parent was not made by lbipam: left alone.
            if claim.ours and claim.parent is not None:
                self._remember(claim)

    async def take(
        self, key: ServiceKey, addresses: Sequence[str], shown: Sequence[str]
    ) -> dict[str, str]:
        """Claim each address for the Service; returns who holds those someone else has.

        A claim remembered for an address the status does not show yet (one made for a
        status write refused with 409, or a sharer's) is made or read again: another replica
        leading at once may have given it back and claimed the address for another Service.
        """
        refused: dict[str, str] = {}
        if not self.enabled:
            return refused
        for address in addresses:
            known = self._ours.get(address)
            if known is not None and address in shown and self._may_use(key, known):
                continue
            holder = await self._claim(key, address)
            if holder is not None:
                refused[address] = holder
        return refused

    async def give_back(self, key: ServiceKey, addresses: Iterable[str]) -> GivenBack:
        """The Service's status no longer shows these: release the claims that are its own."""
        given = GivenBack()
        for address in addresses:
            claim = self._ours.get(address)
            if claim is not None and claim.parent == key:
                await self._release(claim, given)
        return given

    def others(self, key: ServiceKey, shown: Iterable[str]) -> list[str]:
        """The Service's own claims on addresses other than those its status shows: those
        its decision released, and any a let-go whose status write failed left behind."""
        return sorted(self._by_parent.get(key, set()) - set(shown))

    async def let_go(self, key: ServiceKey) -> GivenBack:
        """The Service is gone or no longer ours: release every claim it has (as give_back)."""
        return await self.give_back(key, sorted(self._by_parent.get(key, ())))

    async def collect(self, relist: bool = True) -> tuple[list[ServiceKey], bool]:
        """Release claims nobody holds. Returns holders that must claim their address again,
        and whether an address a released claim had kept from others may be handed out.

        Without `relist`, what this term knows is used: right after the start-up list.
        """
        if not self.enabled:
            return [], False
        if relist:
            self.rebuild(await self.writer.list_claims(claim_view))
        again: list[ServiceKey] = []
        freed = False
        for address, claim in sorted(self._ours.items()):
            owners = self.registry.owners_of(address)
            if claim.parent in owners or not await self._stale(claim):
                continue
            freed |= await self._drop(claim)
            log.info("released the claim on %s, which %s no longer holds", address, claim.parent)
            again.extend(owners)
        return again, freed

    async def _release(self, claim: ClaimView, given: GivenBack) -> None:
        """Drop the claim, or pass it to a Service still sharing the address: left with its
        old parent, it would keep the address from the sharer once that parent shows another.
        A parentRef cannot change, so passing is a delete and a create; each await may let
        the holders change, so they are read after it. A sharer the claim could not pass to
        is left to claim the address itself, retried like any reconcile."""
        address = claim.address
        for _ in range(3):
            if claim.parent in self.registry.owners_of(address):
                return
            given.freed |= await self._drop(claim)
            owners = self.registry.owners_of(address)
            if not owners:
                return
            try:
                holder = await self._claim(owners[0], address)
            except Fenced:
                raise
            except Exception as error:
                holder = f"an error ({error})"
            if holder is not None:
                log.warning("%s: the claim on %s did not pass: %s", owners[0], address, holder)
                given.unclaimed.append(owners[0])
                return
            claim = self._ours[address]
        given.unclaimed.extend(self.registry.owners_of(address))  # the holders kept changing

    async def _drop(self, claim: ClaimView) -> bool:
        """Delete our claim. If it had kept the address from another of our Services (the
        registry blocked it then), the address may be handed out again: whether it was."""
        self._forget(claim.address)
        await self.writer.delete_claim(claim.address, claim.uid)
        return self.registry.unblock(claim.address)

    def _remember(self, claim: ClaimView) -> None:
        self._forget(claim.address)
        self._ours[claim.address] = claim
        if claim.parent is not None:
            self._by_parent.setdefault(claim.parent, set()).add(claim.address)

    def _forget(self, address: str) -> None:
        claim = self._ours.pop(address, None)
        if claim is None or claim.parent is None:
            return
        addresses = self._by_parent.get(claim.parent, set())
        addresses.discard(address)
        if not addresses:
            self._by_parent.pop(claim.parent, None)

    def _may_use(self, key: ServiceKey, claim: ClaimView) -> bool:
        """The claim's Service is this one, or shares the address with it."""
        owners = self.registry.owners_of(claim.address)
        return claim.parent == key or (key in owners and claim.parent in owners)

    async def _claim(self, key: ServiceKey, address: str) -> str | None:
        """Create the claim; None when it is ours now, else who holds the address."""
        for _ in range(3):  # a stale claim deleted meanwhile: try again
            try:
                self._remember(claim_view(await self.writer.create_claim(address, key)))
                return None
            except Exception as error:
                if is_status(error, 403, 422):
                    # Refused by validation or admission (an address inside a ServiceCIDR).
                    return f"the cluster (the API server refused the claim: {_reason(error)})"
                if not is_status(error, 409):
                    raise
            body = await self.writer.read_claim(address)
            if body is None:
                continue
            existing = claim_view(body)
            if not existing.ours or existing.parent is None:
                return existing.describe()
            self._remember(existing)
            # Even our own claim, or a sharer's, is made afresh once stale: another replica
            # leading at once would take it over before our status write shows the address.
            if not await self._stale(existing):
                return None if self._may_use(key, existing) else existing.describe()
            await self._drop(existing)
        return f"a claim on {address} that keeps changing"

    async def _stale(self, claim: ClaimView) -> bool:
        """Whether a claim may go: its Service is gone, or its status has not shown the address
        for longer than a status write can take (two replicas that both think they lead must
        not take each other's claims in flight)."""
        assert claim.parent is not None
        shown = await self.writer.service_ingress(claim.parent)
        if shown is None:
            return True
        return claim.address not in shown and _age(claim.created) > CLAIM_GRACE


def _age(created: str) -> float:
    try:
        stamp = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return math.inf
    return (datetime.datetime.now(datetime.UTC) - stamp).total_seconds()


def _reason(error: BaseException) -> str:
    """The API server's own words from a Status body."""
    try:
        return str(json.loads(getattr(error, "body", "") or "{}")["message"])
    except (ValueError, KeyError, TypeError):
        return str(error)
