"""A user hammering the cluster: Services created and deleted in a background thread."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import urllib3
from kubernetes import client, config

from tests.controlplane import ControlPlane
from tests.kit import service_manifest

# What the API server says, in a 422, when etcd did not answer while it allocated a ClusterIP.
ETCD_AWAY = ("code = Unavailable", "etcdserver: request timed out")


class Burst(threading.Thread):
    """Creates `creates` LoadBalancer Services at `rate` per second, deleting some as it goes.

    Rides out an API server that is down (retries), and remembers what it made and when, so a
    case can ask which Services were created while its fault lasted.
    """

    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        *,
        creates: int = 250,
        delete_ratio: float = 0.35,
        rate: float = 40,
        prefix: str = "b",
        seed: int = 7,
        patience: float = 90,
        **spec: Any,
    ) -> None:
        super().__init__(name=f"burst-{namespace}", daemon=True)
        self.api = config.new_client_from_config(str(plane.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.namespace = namespace
        self.creates = creates
        self.delete_ratio = delete_ratio
        self.rate = rate
        self.prefix = prefix
        self.spec = spec
        self.patience = patience  # seconds the API server may stay unreachable
        self.random = random.Random(seed)
        self.live: list[str] = []
        self.created: dict[str, float] = {}  # name -> when its create request was sent
        self.deleted: set[str] = set()
        self.retries = 0
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._progress = threading.Condition()

    def run(self) -> None:
        try:
            for i in range(self.creates):
                if self._halt.is_set():
                    break
                name = f"{self.prefix}-{i}"
                asked = time.monotonic()
                self._retry(
                    lambda n=name: self.core.create_namespaced_service(
                        self.namespace, service_manifest(n, **self.spec)
                    )
                )
                with self._progress:
                    self.created[name] = asked
                    self.live.append(name)
                    self._progress.notify_all()
                if self.live and self.random.random() < self.delete_ratio:
                    victim = self.live.pop(self.random.randrange(len(self.live)))
                    self._retry(
                        lambda v=victim: self.core.delete_namespaced_service(v, self.namespace)
                    )
                    self.deleted.add(victim)
                time.sleep(1 / self.rate)
        except Exception as error:  # pragma: no cover - reported by finish()
            self.errors.append(f"{error!r}: {getattr(error, 'body', '')}")
        finally:
            with self._progress:
                self._halt.set()
                self._progress.notify_all()

    def _retry(self, call: Any) -> None:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                call()
                return
            except client.ApiException as error:
                if error.status in (404, 409):  # already gone / already made by a retry
                    return
                # An etcd that stopped answering mid-allocation of the ClusterIP comes back as
                # 422 Invalid: "failed to allocate IP: rpc error: code = Unavailable", or
                # "failed to allocate IP: etcdserver: request timed out" (CI, etcd frozen 30 s).
                transient = error.status >= 500 or error.status == 429
                if not transient and not any(why in str(error.body) for why in ETCD_AWAY):
                    raise
            except (urllib3.exceptions.HTTPError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server stayed unreachable for {self.patience:.0f}s")
            self.retries += 1
            time.sleep(0.2)

    def wait_created(self, count: int, timeout: float = 60) -> None:
        """Block until `count` Services were created (the fault lands mid-burst)."""
        with self._progress:
            done = self._progress.wait_for(
                lambda: len(self.created) >= count or self._halt.is_set(), timeout
            )
        assert done and len(self.created) >= count, f"burst stalled: {self.errors}"

    def created_since(self, moment: float) -> set[str]:
        """Services (still there) whose create request was sent at or after `moment`."""
        with self._progress:
            return {n for n, t in self.created.items() if t >= moment and n not in self.deleted}

    def finish(self, timeout: float = 180) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the burst did not finish"
        assert not self.errors, f"the burst failed: {self.errors}"

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.deleted)} deleted, "
            f"{len(self.live)} left, {self.retries} retries"
        )
