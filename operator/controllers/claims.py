"""Address claims: each address in a Service's status is also an IPAddress object.

The API server refuses a second IPAddress of one name, so no two Services can hold one
address even if lbipam's memory is wrong (two leaders, a bug), and an address the API
server's own allocator holds (a ClusterIP) is never handed out. A cluster-scoped IPAddress
cannot be owned by a namespaced Service (the garbage collector ignores such owners), so
claims whose Service let go are collected here: after each status write, at start-up, by the
periodic sweep, and once past the grace when a pass kept one for its youth.

An address held after release (a pool's releaseHold) keeps its claim, for the Service that
let it go, annotated with when it did (`lbipam.io/held-since`): so the hold lives in the API
server, across restarts and leaders. lbipam may create and delete IPAddresses but not update
them, so a claim becomes a hold by a delete and a create, and a hold taken back becomes a
plain claim the same way; between the two, for a moment, the address is unclaimed.

Two replicas leading at once (a split brain) must not undo each other's claims between a
claim and the status write it allows. So a status may come to show an address only on a
claim this replica made itself less than `TRUSTED_AGE` ago (or one the status already
shows), and a claim of a Service that still exists is deleted at once only by the replica
that made it; another's waits until it is `CLAIM_GRACE` old, an age checked before the
Service's status is read. Such a claim is looked at again when its grace is up.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lbipam.ha.term import Fenced
from lbipam.ipam.durations import parse_stamp, stamp
from lbipam.ipam.requests import ServiceKey
from lbipam.kube.errors import ApiError, is_status
from lbipam.kube.gateway import Gateway
from lbipam.objects import ClaimView, claim_view

log = logging.getLogger(__name__)
# Seconds a claim may go without its Service's status showing the address: the time between
# creating a claim and writing the status, with a wide margin.
CLAIM_GRACE = 60.0
# The oldest claim of our own a status write may add its address on: the write lands long
# before another replica may take the claim (CLAIM_GRACE), even on a loaded API server.
TRUSTED_AGE = CLAIM_GRACE / 2
# The Services holding an address now (several only when they share it). A function, not a
# list: every await may change the holders, so they are asked again after each.
Owners = Callable[[str], Sequence[ServiceKey]]


class Holds(Protocol):
    """The registry's holds after release, as the claims need them."""

    def hold_of(self, address: str) -> tuple[ServiceKey, float] | None:
        """For whom the address is held, and since when (seconds since the epoch)."""

    def let_go_unseen(self, address: str, key: ServiceKey, now: float) -> bool:
        """Hold the address for a Service gone unseen, if its pool says so; whether held."""


class NoHolds:
    def hold_of(self, address: str) -> tuple[ServiceKey, float] | None:
        return None

    def let_go_unseen(self, address: str, key: ServiceKey, now: float) -> bool:
        return False


@dataclass
class ClaimReport:
    """What a pass over claims left for the Service controller to act on."""

    # Addresses someone else holds, with who: the registry must block them.
    refused: dict[str, str] = field(default_factory=dict)
    # Addresses whose claim (ours) was deleted: one may have kept the address from another of
    # our Services (the registry blocked it then), so it may be handed out again.
    dropped: list[str] = field(default_factory=list)
    # Holders of an address whose claim did not pass to them: they must claim it themselves.
    unclaimed: list[ServiceKey] = field(default_factory=list)
    # Addresses whose claim outlives its Service's hold on them (another replica's, young),
    # with who: the registry must block them until the claim goes (`dropped`).
    kept: dict[str, str] = field(default_factory=dict)


class AddressClaims:
    """Our IPAddress claims, by address; a no-op when claims are off.

    It talks to the API server only: who holds an address is asked of the caller (`Owners`),
    and what the registry must learn (blocked, unblocked) goes back in a `ClaimReport`.
    """

    def __init__(self, gateway: Gateway, enabled: bool, holds: Holds | None = None) -> None:
        self.gateway = gateway
        self.enabled = enabled
        self.holds = holds or NoHolds()
        self._ours: dict[str, ClaimView] = {}
        # The addresses of _ours by parent: a Service that lets go drops all of its claims,
        # also those its status no longer shows (a type change clears status.loadBalancer).
        self._by_parent: dict[ServiceKey, set[str]] = {}
        # The uids of the claims in _ours this replica made: only those may ground a status
        # write that adds their address, and only those of a live Service go at once.
        self._made: set[str] = set()
        # Addresses a create may have claimed for a Service although no answer said so (its
        # deadline passed or its connection dropped after the API server may have stored
        # it), by Service: read back when the Service releases, or the claim would keep the
        # address from everyone until the next sweep's relist found it.
        self._unsure: dict[ServiceKey, set[str]] = {}
        # When (time.monotonic) each claim kept for its youth may go, by address; `sooner` is
        # set when one is added. A write cut off by a change of leader, or another replica's
        # claim, leaves such a claim behind, keeping the address from everyone meanwhile.
        self._kept: dict[str, float] = {}
        self.sooner = asyncio.Event()
        # While a sweep lists the claims, the addresses whose claim this replica made, read or
        # deleted meanwhile: the list may predate that, so what it says of them is stale.
        self._moved: set[str] | None = None

    def rebuild(self, claims: Iterable[ClaimView], moved: frozenset[str] = frozenset()) -> None:
        """Make the table what was listed, in place, but for the `moved` addresses, whose
        claims changed after the list began. An unchanged claim keeps its object and its
        Service's set: a table made anew at each sweep's relist allocated 5,000 views while
        the old ones lived, and the leader's RSS stepped up at each (bench/README.md)."""
        listed: set[str] = set()
        for claim in claims:
            # A claim with our label but no Service as parent was not made by lbipam: left alone.
            if claim.ours and claim.parent is not None and claim.address not in moved:
                listed.add(claim.address)
                if self._ours.get(claim.address) != claim:
                    self._remember(claim)
        for address in [a for a in self._ours if a not in listed and a not in moved]:
            self._forget(address)

    async def _relist(self) -> None:
        """The sweep's list, made the table. A claim made while the list ran, and missing
        from it, was forgotten: its Service's release then had nothing to release, and the
        address stayed claimed until the next sweep (seen in soaks, once per hour or so)."""
        self._moved = set()
        try:
            listed = await self.gateway.list_claims(self.known)
            self.rebuild(listed, frozenset(self._moved))
        finally:
            self._moved = None

    def known(self, body: Mapping[str, Any]) -> ClaimView:
        """The view of a listed IPAddress: the remembered one when unchanged, so a relist
        holds no second copy of the table while it runs."""
        claim = claim_view(body)
        remembered = self._ours.get(claim.address)
        return remembered if remembered == claim else claim

    def held(self) -> list[tuple[str, ServiceKey, float]]:
        """The holds after release our claims record: address, for whom, since when."""
        return recorded_holds(claim for _, claim in sorted(self._ours.items()))

    async def take(
        self, key: ServiceKey, addresses: Sequence[str], shown: Sequence[str], owners: Owners
    ) -> ClaimReport:
        """Claim each address for the Service; `refused` says who holds those someone else has.

        A claim remembered for an address the status does not show yet (one made for a
        status write refused with 409, or a sharer's) is made or read again: another replica
        leading at once may have given it back and claimed the address for another Service.
        """
        report = ClaimReport()
        if not self.enabled:
            return report
        for address in addresses:
            known = self._ours.get(address)
            if known is not None and address in shown and _may_use(key, known, owners):
                continue
            holder = await self._create_claim(key, address, owners, report, shown)
            if holder is not None:
                report.refused[address] = holder
        return report

    async def release(
        self, key: ServiceKey, addresses: Iterable[str], owners: Owners
    ) -> ClaimReport:
        """The Service's status no longer shows these: release the claims that are its own."""
        report = ClaimReport()
        for address in addresses:
            claim = self._ours.get(address)
            if claim is None or claim.parent != key:
                claim = await self._read_unsure(key, address)
                if claim is None:
                    continue
            youth = 0.0 if claim.uid in self._made else _youth(claim)
            shown = await self.gateway.service_ingress(key)
            if shown is not None and address in shown:
                continue  # shown again: written meanwhile by another replica leading at once
            hold = self.holds.hold_of(address)
            if hold is not None and hold[0] == key:
                # Still the Service's, whoever made the claim: nobody else gets the address.
                await self._hold(claim, stamp(hold[1]))
            elif shown is not None and youth > 0:
                # Another replica's claim, made just now, it may be writing the status with
                # (the age was taken before the status was read); a gone Service's goes.
                self._later(address, youth)
                report.kept[address] = claim.describe()
            else:
                await self._drop_or_pass(claim, report, owners)
        return report

    async def _hold(self, claim: ClaimView, since: str) -> None:
        """Make the claim a hold that began at `since`: a delete and a create."""
        if claim.held_since == since:
            return
        self._forget(claim.address)
        await self.gateway.delete_claim(claim.address, claim.uid)
        assert claim.parent is not None
        try:
            await self._create(claim.address, claim.parent, since)
        except Exception as error:
            if not is_status(error, 409):
                raise
            # Claimed by another between the two: the registry lets the hold run out.
            log.warning("the hold on %s for %s was claimed meanwhile", claim.address, claim.parent)

    async def claimed_for(self, key: ServiceKey, shown: Iterable[str]) -> list[str]:
        """The addresses the Service's status shows whose claim, as last read, is its own
        (not a hold after release). A claim not known here is read: another replica leading
        at once made it, and wrote the status this replica would otherwise write over."""
        if not self.enabled:
            return []
        for address in shown:
            if address not in self._ours and (body := await self.gateway.read_claim(address)):
                read = claim_view(body)
                if read.ours and read.parent is not None:
                    self._remember(read)
        return [
            address
            for address in shown
            if (claim := self._ours.get(address)) and claim.parent == key and not claim.held_since
        ]

    def left_behind(self, key: ServiceKey, shown: Iterable[str]) -> list[str]:
        """The Service's own claims on addresses other than those its status shows: those
        its decision released, and any a let-go whose status write failed left behind."""
        return sorted(self._of(key) - set(shown))

    async def release_all(self, key: ServiceKey, owners: Owners) -> ClaimReport:
        """The Service is gone or no longer ours: release every claim it has."""
        return await self.release(key, sorted(self._of(key)), owners)

    def _of(self, key: ServiceKey) -> set[str]:
        """The addresses the Service has claims on, or may have."""
        return self._by_parent.get(key, set()) | self._unsure.get(key, set())

    @property
    def recheck_at(self) -> float:
        """When (time.monotonic) the first claim kept for its youth may go."""
        return min(self._kept.values(), default=math.inf)

    async def collect(self, owners: Owners, relist: bool = True, due: bool = False) -> ClaimReport:
        """Release claims nobody holds; their holders, if any, must claim the address again.

        Without `relist`, what this term knows is used: right after the start-up list. With
        `due`, only the claims kept for their youth whose grace is up are looked at.
        """
        report = ClaimReport()
        if not self.enabled:
            return report
        if due:
            now = time.monotonic()
            addresses = sorted(address for address, at in self._kept.items() if at <= now)
            for address in addresses:
                del self._kept[address]
        else:
            if relist:
                await self._relist()
            self._kept.clear()
            addresses = sorted(self._ours)
        for address in addresses:
            if (claim := self._ours.get(address)) is not None:
                await self._collect(claim, owners, report)
        return report

    async def _collect(self, claim: ClaimView, owners: Owners, report: ClaimReport) -> None:
        address = claim.address
        holders = owners(address)
        hold = self.holds.hold_of(address)
        if claim.parent in holders or (hold is not None and hold[0] == claim.parent):
            return
        if not holders and await self._held_for_gone(claim):
            return
        wait = await self._wait(claim)
        if wait > 0:
            self._later(address, wait)
            if wait < math.inf and not holders:
                # Kept for its youth: the address is nobody's here, and nobody else's yet.
                report.kept[address] = claim.describe()
            return
        await self._drop(claim, report)
        log.info("released the claim on %s, which %s no longer holds", address, claim.parent)
        report.unclaimed.extend(holders)

    async def _held_for_gone(self, claim: ClaimView) -> bool:
        """A plain claim of a Service deleted while nobody watched (between two leaders, say)
        becomes a hold from now, if its pool has a releaseHold; whether it did."""
        assert claim.parent is not None
        if claim.held_since or await self.gateway.service_ingress(claim.parent) is not None:
            return False
        now = time.time()
        if not self.holds.let_go_unseen(claim.address, claim.parent, now):
            return False
        await self._hold(claim, stamp(now))
        log.info("held %s for %s, deleted while unwatched", claim.address, claim.parent)
        return True

    async def _drop_or_pass(self, claim: ClaimView, report: ClaimReport, owners: Owners) -> None:
        """Drop the claim, or pass it to a Service still sharing the address: left with its
        old parent, it would keep the address from the sharer once that parent shows another.
        A parentRef cannot change, so passing is a delete and a create; each await may let
        the holders change, so they are read after it. A sharer the claim could not pass to
        is left to claim the address itself, retried like any reconcile."""
        address = claim.address
        for _ in range(3):
            if claim.parent in owners(address):
                return
            await self._drop(claim, report)
            holders = owners(address)
            if not holders:
                return
            try:
                holder = await self._create_claim(holders[0], address, owners, report)
            except Fenced:
                raise
            except Exception as error:
                holder = f"an error ({error})"
            if holder is not None:
                log.warning("%s: the claim on %s did not pass: %s", holders[0], address, holder)
                report.unclaimed.append(holders[0])
                return
            claim = self._ours[address]
        report.unclaimed.extend(owners(address))  # the holders kept changing

    async def _drop(self, claim: ClaimView, report: ClaimReport) -> None:
        """Delete our claim, and say so: it may have kept the address from another Service."""
        self._forget(claim.address)
        await self.gateway.delete_claim(claim.address, claim.uid)
        report.dropped.append(claim.address)

    def _later(self, address: str, wait: float) -> None:
        """Look at the claim again in `wait` seconds (math.inf: only at the next sweep)."""
        at = time.monotonic() + wait
        if at < self._kept.get(address, math.inf):
            self._kept[address] = at
            self.sooner.set()

    def _remember(self, claim: ClaimView, made: bool = False) -> None:
        made = made or claim.uid in self._made  # read again: still the one we made
        self._forget(claim.address)  # counted as moved, if a sweep lists meanwhile
        self._ours[claim.address] = claim
        if made:
            self._made.add(claim.uid)
        if claim.parent is not None:
            self._by_parent.setdefault(claim.parent, set()).add(claim.address)
            self._sure(claim.parent, claim.address)

    def _sure(self, key: ServiceKey, address: str) -> None:
        """Whether the Service has a claim on the address is known again."""
        if (unsure := self._unsure.get(key)) is not None:
            unsure.discard(address)
            if not unsure:
                del self._unsure[key]

    async def _create(self, address: str, key: ServiceKey, held_since: str = "") -> None:
        """Create the claim and remember it; one whose outcome is unknown, as maybe made."""
        try:
            body = await self.gateway.create_claim(address, key, held_since)
        except Fenced:
            raise  # never sent
        except Exception as error:
            if not isinstance(error, ApiError) or error.status >= 500:
                self._unsure.setdefault(key, set()).add(address)
            raise
        self._remember(claim_view(body), made=True)

    async def _read_unsure(self, key: ServiceKey, address: str) -> ClaimView | None:
        """The Service's claim on the address, if a create whose outcome is unknown made it."""
        if address not in self._unsure.get(key, ()):
            return None
        body = await self.gateway.read_claim(address)
        self._sure(key, address)
        claim = None if body is None else claim_view(body)
        if claim is None or not claim.ours or claim.parent != key:
            return None
        self._remember(claim)
        return claim

    def _forget(self, address: str) -> None:
        if self._moved is not None:
            self._moved.add(address)
        claim = self._ours.pop(address, None)
        if claim is None:
            return
        self._made.discard(claim.uid)
        if claim.parent is None:
            return
        addresses = self._by_parent.get(claim.parent, set())
        addresses.discard(address)
        if not addresses:
            self._by_parent.pop(claim.parent, None)

    async def _create_claim(
        self,
        key: ServiceKey,
        address: str,
        owners: Owners,
        report: ClaimReport,
        shown: Sequence[str] = (),
    ) -> str | None:
        """Create the claim; None when it is ours now, else who holds the address. `shown`:
        what the status the caller writes over shows (a claim it shows needs no trust)."""
        for _ in range(3):  # a stale claim deleted meanwhile: try again
            try:
                await self._create(address, key)
                return None
            except Exception as error:
                if is_status(error, 403, 422):
                    # Refused by validation or admission (an address inside a ServiceCIDR).
                    return f"the cluster (the API server refused the claim: {_reason(error)})"
                if not is_status(error, 409):
                    raise
            body = await self.gateway.read_claim(address)
            if body is None:
                continue
            existing = claim_view(body)
            if not existing.ours or existing.parent is None:
                return existing.describe()
            self._remember(existing)
            if existing.held_since and existing.parent == key:
                await self._drop(existing, report)  # its hold, taken back: a plain claim again
                continue
            if _may_use(key, existing, owners):
                if address in shown or self._trusted(existing):
                    return None
                if existing.parent == key and existing.uid in self._made:
                    # Ours, but too old to build a write on: made afresh.
                    await self._drop(existing, report)
                    continue
            # Another's claim, or one too old to trust: made afresh once stale. A young one
            # of the Service itself, made by another replica leading at once, that replica
            # may be writing the status with right now; a sharer's was always good enough.
            if await self._wait(existing) > 0:
                if _may_use(key, existing, owners) and existing.parent != key:
                    return None
                return existing.describe()
            await self._drop(existing, report)
        return f"a claim on {address} that keeps changing"

    def _trusted(self, claim: ClaimView) -> bool:
        """A claim this replica made, young enough to ground a status write (TRUSTED_AGE)."""
        return claim.uid in self._made and _age(claim.created) < TRUSTED_AGE

    async def _wait(self, claim: ClaimView) -> float:
        """Seconds until the claim may go; 0 when it may now: its Service is gone, or its
        status has not shown the address for longer than a status write can take (two
        replicas that both think they lead must not take each other's claims in flight).
        The age is taken before the status is read: a write made on the claim while it was
        young has landed by then, and the read shows it."""
        assert claim.parent is not None
        youth = _youth(claim)
        shown = await self.gateway.service_ingress(claim.parent)
        if shown is None:
            return 0.0
        if claim.address in shown:
            return math.inf
        return youth


def recorded_holds(claims: Iterable[ClaimView]) -> list[tuple[str, ServiceKey, float]]:
    """The holds after release among our claims: address, for whom, since when."""
    return [
        (claim.address, claim.parent, since)
        for claim in claims
        if claim.ours
        and claim.parent is not None
        and (since := parse_stamp(claim.held_since)) is not None
    ]


def _may_use(key: ServiceKey, claim: ClaimView, owners: Owners) -> bool:
    """The claim's Service is this one, or shares the address with it."""
    holders = owners(claim.address)
    return claim.parent == key or (key in holders and claim.parent in holders)


def _youth(claim: ClaimView) -> float:
    """Seconds until the claim is CLAIM_GRACE old; none for a hold after release, which
    grounds no status write (one taken back is made afresh), so one the registry does not
    keep (its address left every pool) is over."""
    if claim.held_since:
        return 0.0
    return max(0.0, CLAIM_GRACE - _age(claim.created))


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
