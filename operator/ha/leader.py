"""Leader election on a coordination.k8s.io/v1 Lease; the operator runs only while leading.

The leader stops acting when it sees another holder, or once it has failed to renew for
`renew_deadline`, which is shorter than `lease_duration`: it has stopped before any other
replica may take the Lease over.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from lbipam.clock import timestamp
from lbipam.ha.term import Term
from lbipam.kube.errors import is_status
from lbipam.kube.leases import Leases
from lbipam.settings import Settings

LEASE_NAME = "lbipam-leader"
log = logging.getLogger(__name__)


class Attempt(enum.Enum):
    HELD = "held"  # we hold the Lease now
    TAKEN = "taken"  # another replica holds it
    FAILED = "failed"  # the API server did not answer as it should


class LeaderElector:
    def __init__(self, leases: Leases, settings: Settings, identity: str) -> None:
        self.leases = leases
        self.settings = settings
        self.namespace = settings.namespace
        self.identity = identity
        # No write sent while leading may still be in flight once another replica may lead.
        leases.api.deadlines.fit(settings.lease_duration, settings.renew_deadline)
        # Expiry is judged by our own clock from when we last saw the record change, so
        # clock skew between replicas cannot shorten another leader's term; and only over
        # time the API server answered us (see `_try`).
        self._observed: tuple[str, str, float] | None = None

    async def run(self, lead: Callable[[Term], Awaitable[None]]) -> None:
        """Wait for the Lease and lead while it is ours; return when `lead` ends by itself.

        `lead(term)` must stop acting as soon as the term ends, and write only while it is
        active.
        """
        while True:
            term = Term(self.settings.renew_deadline)
            term.renewed(await self._acquire())
            log.info("%s became leader (Lease %s/%s)", self.identity, self.namespace, LEASE_NAME)
            leading = asyncio.ensure_future(lead(term))
            renewing = asyncio.create_task(self._keep(term))
            try:
                done, _ = await asyncio.wait(
                    {leading, renewing}, return_when=asyncio.FIRST_COMPLETED
                )
                if leading not in done and term.ended.is_set():
                    # `lead` ended the term itself (Kopf stopping on a signal): not a loss.
                    done, _ = await asyncio.wait({leading})
            except asyncio.CancelledError:
                # Stopped from outside (a signal before Kopf took signals over): hand over too.
                # The ended term fences every write, so the Lease can go before `lead` ends.
                term.ended.set()
                renewing.cancel()
                leading.cancel()
                await self._release()
                raise
            if leading in done:
                # Shutdown (or a crash): hand the Lease over at once instead of letting it expire.
                renewing.cancel()
                await self._release()
                leading.result()
                return
            term.ended.set()
            log.warning("%s lost leadership; handling stopped", self.identity)
            await leading

    async def _acquire(self) -> float:
        """Wait until the Lease is ours; returns when (monotonic) the winning request was sent."""
        while True:
            sent = time.monotonic()
            if await self._try() is Attempt.HELD:
                return sent
            await asyncio.sleep(self.settings.retry_period)

    async def _keep(self, term: Term) -> None:
        """Renew until another holder shows or the term's Lease window runs out.

        The clock ends the term, not an answer: an attempt stuck in a hung API server is given
        up when the window closes, so Kopf stops then too, not whenever the request returns.
        """
        while term.active():
            await asyncio.sleep(min(self.settings.retry_period, term.remaining()))
            if not term.active():
                return
            sent = time.monotonic()
            try:
                async with asyncio.timeout(term.remaining()):
                    attempt = await self._try()
            except TimeoutError:
                return
            if attempt is Attempt.TAKEN:
                return
            if attempt is Attempt.HELD:
                term.renewed(sent)

    async def _try(self) -> Attempt:
        try:
            return await self._try_once()
        except Exception as error:  # any failure is a failed attempt, retried
            log.debug("Lease attempt failed: %s", error)
            # A stalled API server (or etcd) still holds the writes the leader sent before
            # its deadline, and stores them the moment it resumes, however long ago the
            # leader gave them up. Time it did not answer us does not count toward expiry:
            # the Lease must look unrenewed for a whole duration after it answers again.
            self._observed = None
            return Attempt.FAILED

    async def _try_once(self) -> Attempt:
        duration = int(self.settings.lease_duration)
        stamp = timestamp(micro=True)
        try:
            lease = await self.leases.read(LEASE_NAME)
        except Exception as error:
            if not is_status(error, 404):
                raise
            created = {
                "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": duration,
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": 0,
                },
            }
            await self.leases.create(created)
            return Attempt.HELD
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renew = str(spec.get("renewTime") or "")
        if self._observed is None or self._observed[:2] != (holder, renew):
            self._observed = (holder, renew, time.monotonic())
        expired = time.monotonic() - self._observed[2] > (
            spec.get("leaseDurationSeconds") or duration
        )
        if holder and holder != self.identity and not expired:
            return Attempt.TAKEN
        ours = holder == self.identity
        update = {
            "metadata": {
                "name": LEASE_NAME,
                "namespace": self.namespace,
                "resourceVersion": lease["metadata"]["resourceVersion"],
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": spec.get("acquireTime") if ours else stamp,
                "renewTime": stamp,
                "leaseTransitions": (spec.get("leaseTransitions") or 0) + (0 if ours else 1),
            },
        }
        # resourceVersion makes this a compare-and-swap: of two candidates only one wins.
        await self.leases.replace(LEASE_NAME, update)
        self._observed = (self.identity, stamp, time.monotonic())
        return Attempt.HELD

    async def _release(self) -> None:
        """Clear our holdership so a follower need not wait for the Lease to expire."""
        try:
            lease = await self.leases.read(LEASE_NAME)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                spec.update(holderIdentity=None, renewTime=None, acquireTime=None)
                # An update carrying the resourceVersion just read: the one verb the Role grants
                # on the Lease, and a compare-and-swap that leaves a Lease taken meanwhile alone.
                await self.leases.replace(LEASE_NAME, lease)
                log.info("%s released the Lease", self.identity)
        except Exception as error:  # the Lease then simply expires
            log.warning("could not release the Lease: %s", error)
