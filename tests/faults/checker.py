"""The one promise every fault case checks, read from the API server and nothing else.

After recovery:
1. every handled Service holds an address from an IPPool, or carries our condition with
   status False saying why not;
2. no address is held by two Services, unless they share it by sharing key (same key, no
   port+protocol in common, and across namespaces each lists the other's namespace or `*` in
   lbipam.io/sharing-cross-namespace);
3. no address held before the fault changed, unless it is no longer inside any IPPool (a
   shrunk pool revokes it) or the case names it as one the fault itself took away.

The checker parses pools with `ipaddress` on its own: the operator's code is what it checks.
"""

from __future__ import annotations

import bisect
import ipaddress
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config, watch

GROUP, VERSION, PLURAL = "lbipam.io", "v1alpha1", "ippools"
CLASS = "lbipam.io/lb"
CONDITION = "lbipam.io/AddressAllocated"
REASONS = {
    "Allocated",
    "PoolExhausted",
    "NoMatchingPool",
    "AddressInUse",
    "AddressNotInPool",
    "InvalidRequest",
    "PortConflict",
    "AddressReserved",
    "NamespaceLimitReached",
    "AddressHeld",
}


@dataclass(frozen=True)
class Held:
    """One Service as the checker sees it."""

    uid: str
    key: str  # namespace/name
    created: str
    addresses: tuple[str, ...]
    handled: bool
    condition: Mapping[str, Any] | None
    sharing_key: str | None
    ports: frozenset[tuple[int, str]]
    # The namespaces its lbipam.io/sharing-cross-namespace lists (`*` for every one).
    share_with: frozenset[str] = frozenset()


Snapshot = dict[str, Held]  # by uid: a recreated Service of the same name is a new Service


def _held(service: Mapping[str, Any]) -> Held:
    meta = service["metadata"]
    spec = service.get("spec") or {}
    status = service.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    lb_class = spec.get("loadBalancerClass")
    condition = next(
        (c for c in status.get("conditions") or [] if c.get("type") == CONDITION), None
    )
    annotations = meta.get("annotations") or {}
    return Held(
        uid=meta["uid"],
        key=f"{meta['namespace']}/{meta['name']}",
        created=meta.get("creationTimestamp") or "",
        addresses=tuple(entry["ip"] for entry in ingress if entry.get("ip")),
        handled=spec.get("type") == "LoadBalancer" and lb_class in (None, CLASS),
        condition=condition,
        sharing_key=(annotations.get("lbipam.io/sharing-key") or "").strip() or None,
        ports=frozenset(
            (int(p["port"]), p.get("protocol") or "TCP") for p in spec.get("ports") or []
        ),
        share_with=frozenset(
            name.strip()
            for name in (annotations.get("lbipam.io/sharing-cross-namespace") or "").split(",")
            if name.strip()
        ),
    )


def snapshot(api: client.ApiClient) -> Snapshot:
    """Every Service in the cluster, read from the API server."""
    core = client.CoreV1Api(api)
    raw = api.sanitize_for_serialization(core.list_service_for_all_namespaces())
    return {h.uid: h for h in map(_held, raw.get("items") or [])}


class PoolSpace:
    """The addresses the cluster's IPPools contain (entries minus exclude and buggy IPs)."""

    def __init__(self, pools: Iterable[Mapping[str, Any]]) -> None:
        self.names: list[str] = []
        self._pools: list[_ParsedPool] = []
        spans: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for pool in pools:
            spec = pool.get("spec") or {}
            parsed = _ParsedPool(
                entries=[_interval(e) for e in spec.get("addresses") or []],
                exclude=[_interval(e) for e in spec.get("exclude") or []],
                buggy=bool(spec.get("avoidBuggyIPs")),
            )
            self.names.append(pool["metadata"]["name"])
            self._pools.append(parsed)
            for family, start, end in parsed.entries:
                spans[family].append((start, end))
        # Merged entries of all pools: a quick "in no pool at all" before the exact answer.
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for family, found in spans.items():
            merged: list[tuple[int, int]] = []
            for start, end in sorted(found):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._starts[family] = [s for s, _ in merged]
            self._ends[family] = [e for _, e in merged]

    def contains(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        family, value = ip.version, int(ip)
        index = bisect.bisect_right(self._starts.get(family) or [], value) - 1
        if index < 0 or value > self._ends[family][index]:
            return False
        return any(pool.contains(family, value) for pool in self._pools)


@dataclass(frozen=True)
class _ParsedPool:
    entries: list[tuple[int, int, int]]
    exclude: list[tuple[int, int, int]]
    buggy: bool

    def contains(self, family: int, value: int) -> bool:
        def within(spans: list[tuple[int, int, int]]) -> bool:
            return any(f == family and a <= value <= b for f, a, b in spans)

        if not within(self.entries) or within(self.exclude):
            return False
        return not (self.buggy and family == 4 and value & 0xFF in (0, 255))


def _interval(entry: str) -> tuple[int, int, int]:
    """(family, first, last) of an IPPool entry; family 0 when unreadable."""
    try:
        if "/" in entry:
            net = ipaddress.ip_network(entry.strip(), strict=False)
            return net.version, int(net.network_address), int(net.broadcast_address)
        if "-" in entry:
            first, _, last = entry.partition("-")
            a, b = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
            return a.version, int(a), int(b)
        ip = ipaddress.ip_address(entry.strip())
        return ip.version, int(ip), int(ip)
    except ValueError:
        return 0, 0, -1


def list_pools(api: client.ApiClient) -> list[dict[str, Any]]:
    custom = client.CustomObjectsApi(api)
    listing: dict[str, Any] = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    return list(listing.get("items") or [])


@dataclass
class Verdict:
    """What the checker found: the broken promises, and what it looked at."""

    violations: list[str] = field(default_factory=list)
    services: int = 0
    handled: int = 0
    holding: int = 0
    pools: int = 0

    def __bool__(self) -> bool:
        return not self.violations


def check(
    api: client.ApiClient,
    before: Snapshot | None = None,
    *,
    may_move: Callable[[Held, str], bool] | None = None,
) -> Verdict:
    """Read all Services and IPPools from the API server and judge the promise.

    `before` is a snapshot taken before the fault; `may_move(service, address)` names the
    addresses the case's fault itself was allowed to take away (a hand-written status, say).
    """
    pools = list_pools(api)
    space = PoolSpace(pools)
    now = snapshot(api)
    verdict = Verdict(services=len(now), pools=len(pools))
    holders: dict[str, list[Held]] = defaultdict(list)
    for service in now.values():
        if not service.handled:
            continue
        verdict.handled += 1
        condition = service.condition or {}
        if service.addresses:
            verdict.holding += 1
        for address in service.addresses:
            holders[address].append(service)
            if not space.contains(address):
                verdict.violations.append(f"{service.key} holds {address}, which is in no IPPool")
        if not service.addresses and condition.get("status") != "False":
            verdict.violations.append(
                f"{service.key} holds no address and has no condition saying why "
                f"(condition: {dict(condition) or None})"
            )
        if condition and condition.get("reason") not in REASONS:
            verdict.violations.append(f"{service.key}: unknown reason {condition.get('reason')}")
        if condition.get("status") == "True" and not service.addresses:
            verdict.violations.append(f"{service.key}: condition Allocated but no address")
    for address, services in holders.items():
        if len(services) > 1 and not _may_share(services):
            names = ", ".join(sorted(s.key for s in services))
            verdict.violations.append(f"{address} is held by {names}")
    for uid, old in (before or {}).items():
        new = now.get(uid)
        if new is None or not new.handled or not old.handled:
            continue
        for address in old.addresses:
            if address in new.addresses or not space.contains(address):
                continue
            if may_move is not None and may_move(old, address):
                continue
            verdict.violations.append(
                f"{old.key} held {address} before the fault and now holds {new.addresses}"
            )
    return verdict


def _may_share(services: list[Held]) -> bool:
    """One sharing key, no port in common, and each pair of two namespaces consenting."""
    if len({s.sharing_key for s in services}) != 1 or services[0].sharing_key is None:
        return False
    if not all(consenting(a, b) for a in services for b in services):
        return False
    seen: set[tuple[int, str]] = set()
    for service in services:
        if seen & service.ports:
            return False
        seen |= service.ports
    return True


def consenting(a: Held, b: Held) -> bool:
    """One sharing key, and one namespace or each listing the other's (or `*`)."""
    mine, theirs = a.key.split("/")[0], b.key.split("/")[0]
    return (
        a.sharing_key is not None
        and a.sharing_key == b.sharing_key
        and (mine == theirs or (_admits(a, theirs) and _admits(b, mine)))
    )


def _admits(service: Held, namespace: str) -> bool:
    return "*" in service.share_with or namespace in service.share_with


def converge(
    api: client.ApiClient,
    before: Snapshot | None = None,
    *,
    timeout: float = 120,
    may_move: Callable[[Held, str], bool] | None = None,
    settled: Callable[[], bool] = lambda: True,
    context: Callable[[], str] = lambda: "",
) -> tuple[Verdict, float]:
    """Poll `check` until the promise holds (and `settled()`); returns the verdict and seconds.

    Fails with every violation still standing after `timeout`.
    """
    started = time.monotonic()
    verdict = Verdict(violations=["never checked"])
    while time.monotonic() - started < timeout:
        try:
            verdict = check(api, before, may_move=may_move)
        except (client.ApiException, OSError) as error:  # the API server may still be coming up
            verdict = Verdict(violations=[f"could not read the cluster: {error}"])
        if verdict and settled():
            return verdict, time.monotonic() - started
        time.sleep(0.5)
    shown = "\n  ".join(verdict.violations[:30])
    more = len(verdict.violations) - 30
    raise AssertionError(
        f"the promise still does not hold after {timeout:.0f}s "
        f"({len(verdict.violations)} violations):\n  {shown}"
        + (f"\n  … and {more} more" if more > 0 else "")
        + (f"\n{context()}" if context else "")
    )


@dataclass(frozen=True)
class Loss:
    """A Service seen holding an address, then seen without it."""

    key: str
    uid: str
    address: str
    then: tuple[str, ...]
    at: float


class Monitor(threading.Thread):
    """Watches a namespace's Services for the whole case; remembers every address lost.

    The end state can look fine after an address flapped (a stale leader wrote, the new one
    wrote back); the watch sees the flap. Survives API server restarts (re-watch, re-list on
    410 Gone).
    """

    def __init__(self, kubeconfig: str, namespace: str) -> None:
        super().__init__(name=f"monitor-{namespace}", daemon=True)
        self.api = config.new_client_from_config(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.namespace = namespace
        self.held: dict[str, tuple[str, ...]] = {}
        self.losses: list[Loss] = []
        self.relists = 0
        self._halt = threading.Event()
        self._version = ""
        self._lock = threading.Lock()

    def _see(self, service: Any, deleted: bool = False) -> None:
        raw = self.api.sanitize_for_serialization(service)
        seen = _held(raw)
        with self._lock:
            if deleted:
                self.held.pop(seen.uid, None)
                return
            previous = self.held.get(seen.uid, ())
            if seen.handled:
                for address in previous:
                    if address not in seen.addresses:
                        self.losses.append(
                            Loss(seen.key, seen.uid, address, seen.addresses, time.monotonic())
                        )
            self.held[seen.uid] = seen.addresses

    def _relist(self) -> None:
        listing = self.core.list_namespaced_service(self.namespace)
        self.relists += 1
        for service in listing.items:
            self._see(service)
        self._version = listing.metadata.resource_version

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                if not self._version:
                    self._relist()
                stream = watch.Watch()
                for event in stream.stream(
                    self.core.list_namespaced_service,
                    self.namespace,
                    resource_version=self._version,
                    timeout_seconds=5,
                ):
                    if event["type"] == "ERROR":
                        self._version = ""  # 410 Gone: list again
                        break
                    self._see(event["object"], deleted=event["type"] == "DELETED")
                    self._version = event["object"].metadata.resource_version
                    if self._halt.is_set():
                        break
            except client.ApiException as error:
                if error.status == 410:
                    self._version = ""
                time.sleep(0.2)
            except Exception:  # the API server is restarting: watch again shortly
                time.sleep(0.2)

    def ready(self) -> Monitor:
        self.start()
        deadline = time.monotonic() + 10
        while not self._version and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def violations(
        self, api: client.ApiClient, may_move: Callable[[Held, str], bool] | None = None
    ) -> list[str]:
        """Losses of addresses still inside some IPPool now, that the case did not allow."""
        space = PoolSpace(list_pools(api))
        found = []
        with self._lock:
            losses = list(self.losses)
        for loss in losses:
            if not space.contains(loss.address):
                continue  # revoked by a shrunk pool: it had to move
            held = Held(loss.uid, loss.key, "", (loss.address,), True, None, None, frozenset())
            if may_move is not None and may_move(held, loss.address):
                continue
            found.append(f"{loss.key} lost {loss.address} (then held {loss.then or 'nothing'})")
        return found
