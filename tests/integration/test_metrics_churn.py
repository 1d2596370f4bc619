"""Prometheus scrapes the operator while pools and their Services come and go: no scrape fails."""

from __future__ import annotations

import re
import threading
import urllib.request

from kubernetes import client

from tests.kit import Pools, create, eventually, service_manifest, subnet, wait_address
from tests.operator_process import OperatorProcess

SCRAPES = 2000
CYCLES = 5  # pools made, used and deleted while scraping, at the least
KEPT = 2  # pools alive at once besides the newest: each lives a few rounds, long enough to be seen
SCRAPE_TIMEOUT = 10  # Prometheus' default scrape_timeout


class Churn(threading.Thread):
    """Makes a pool and gives a Service an address from it, then deletes the Service and the
    pool made KEPT rounds before; again and again."""

    def __init__(self, core: client.CoreV1Api, pools: Pools, namespace: str) -> None:
        super().__init__(daemon=True)
        self.core, self.pools, self.namespace = core, pools, namespace
        self.networking = client.NetworkingV1Api(core.api_client)
        self.addresses: dict[int, str] = {}
        self.deleted: list[str] = []
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        made = 0
        try:
            while not self.done.is_set():
                self.make(made)
                if made >= KEPT:
                    self.delete(made - KEPT)
                made += 1
            for left in range(max(0, made - KEPT), made):
                self.delete(left)
        except BaseException as error:  # shown by the test, not lost with the thread
            self.error = error

    def make(self, n: int) -> None:
        pool = self.pools.create([f"{subnet()}.0/30"], name=f"{self.namespace}-churn-{n}")
        service = f"churn-{n}"
        annotations = {"lbipam.io/pool": pool}
        create(self.core, self.namespace, service_manifest(service, annotations=annotations))
        self.addresses[n] = wait_address(self.core, self.namespace, service)[0]

    def delete(self, n: int) -> None:
        """The Service, then its pool once the operator let go of the Service (its claim went).
        A pool deleted first revokes the Service's address, and that failure names the pool:
        such a series stays FAILED_SERIES_KEEP, as one naming a typo does (a unit test's story)."""
        self.core.delete_namespaced_service(f"churn-{n}", self.namespace)
        address = self.addresses.pop(n)
        eventually(lambda: not claimed(self.networking, address), what=f"claim on {address} gone")
        pool = f"{self.namespace}-churn-{n}"
        self.pools.delete(pool)
        self.deleted.append(pool)


def claimed(networking: client.NetworkingV1Api, address: str) -> bool:
    try:
        networking.read_ip_address(address)
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def scrape(operator: OperatorProcess) -> str:
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
        return str(response.read().decode())


def test_no_scrape_fails_while_pools_are_created_and_deleted(
    core: client.CoreV1Api, pools: Pools, namespace: str, operator: OperatorProcess
) -> None:
    churn = Churn(core, pools, namespace)
    scrapes, failures, seen = 0, [], set()
    churn.start()
    try:
        while (scrapes < SCRAPES or len(churn.deleted) < CYCLES) and churn.is_alive():
            scrapes += 1
            try:
                text = scrape(operator)
            except OSError as error:  # HTTPError included: a collector that raised gives a 500
                failures.append(repr(error))
                continue
            if "lbipam_leader 1.0" not in text:
                failures.append(f"scrape {scrapes} is not the leader's: {text[-200:]!r}")
            seen.update(re.findall(rf'family="IPv4",pool="({namespace}-churn-\d+)"', text))
    finally:
        churn.done.set()
        churn.join(60)

    print(f"{scrapes} scrapes, {len(failures)} failed;", end=" ")
    print(f"{len(churn.deleted)} pools made and deleted, {len(seen)} of them seen in scrapes")
    assert churn.error is None, churn.error
    assert failures == [], failures[:5]
    assert scrapes >= SCRAPES
    assert seen, "no scrape showed a churned pool: the scrapes did not overlap the churn"

    left: list[str] = []

    def no_series_of_deleted_pools() -> bool:
        deleted = {f'pool="{pool}"' for pool in churn.deleted}
        left[:] = [
            line for line in scrape(operator).splitlines() if any(p in line for p in deleted)
        ]
        return not left

    try:
        eventually(no_series_of_deleted_pools, timeout=30)
    except AssertionError:
        raise AssertionError(f"series of deleted pools left after 30s: {left}") from None
