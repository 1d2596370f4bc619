"""Leader election on a coordination.k8s.io/v1 Lease; runs the operator only while leading.

The leader stops acting once it has failed to renew for `renew_deadline`, which is shorter than
`lease_duration`: it has stopped before any other replica may take the Lease over.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes.aio import client

from lbipam.kube import is_status
from lbipam.settings import Settings

LEASE_NAME = "lbipam-leader"
log = logging.getLogger(__name__)


def _micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, api: client.ApiClient, settings: Settings, identity: str) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.settings = settings
        self.namespace = settings.namespace
        self.identity = identity
        # Expiry is judged by our own clock from when we last saw the record change, so
        # clock skew between replicas cannot shorten another leader's term.
        self._observed: tuple[str, str, float] | None = None

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Forever: wait for the Lease, lead while it is renewed, stop at once when it is not."""
        while True:
            await self._acquire()
            log.info("%s became leader (Lease %s/%s)", self.identity, self.namespace, LEASE_NAME)
            leading = asyncio.ensure_future(lead())
            renewing = asyncio.create_task(self._keep())
            done, _ = await asyncio.wait({leading, renewing}, return_when=asyncio.FIRST_COMPLETED)
            leading.cancel()
            renewing.cancel()
            await asyncio.gather(leading, renewing, return_exceptions=True)
            if leading in done and leading.exception() is not None:
                raise leading.exception()  # type: ignore[misc]
            log.warning("%s lost leadership; handling stopped", self.identity)

    async def _acquire(self) -> None:
        while True:
            if await self._try():
                return
            await asyncio.sleep(self.settings.retry_period)

    async def _keep(self) -> None:
        """Renew until a renewal has not succeeded within the deadline, then return."""
        last = time.monotonic()
        while time.monotonic() - last < self.settings.renew_deadline:
            await asyncio.sleep(self.settings.retry_period)
            remaining = self.settings.renew_deadline - (time.monotonic() - last)
            try:
                async with asyncio.timeout(max(remaining, 0.1)):
                    if await self._try():
                        last = time.monotonic()
            except TimeoutError:
                pass

    async def _try(self) -> bool:
        try:
            return await self._try_once()
        except Exception as error:
            log.debug("Lease attempt failed: %s", error)
            return False

    async def _try_once(self) -> bool:
        duration = int(self.settings.lease_duration)
        stamp = _micro_time()
        try:
            lease: Any = await self.leases.read_namespaced_lease(LEASE_NAME, self.namespace)
        except Exception as error:
            if not is_status(error, 404):
                raise
            body: Any = {
                "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": duration,
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": 0,
                },
            }
            await self.leases.create_namespaced_lease(self.namespace, body)
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        renew = str(spec.renew_time or "")
        if self._observed is None or self._observed[:2] != (holder, renew):
            self._observed = (holder, renew, time.monotonic())
        expired = time.monotonic() - self._observed[2] > (spec.lease_duration_seconds or duration)
        if holder and holder != self.identity and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if holder == self.identity else 1)
        update: Any = {
            "metadata": {
                "name": LEASE_NAME,
                "namespace": self.namespace,
                "resourceVersion": lease.metadata.resource_version,
            },
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": stamp if holder != self.identity else spec.acquire_time,
                "renewTime": stamp,
                "leaseTransitions": transitions,
            },
        }
        # resourceVersion makes this a compare-and-swap: of two candidates only one wins.
        await self.leases.replace_namespaced_lease(LEASE_NAME, self.namespace, update)
        self._observed = (self.identity, stamp, time.monotonic())
        return True
