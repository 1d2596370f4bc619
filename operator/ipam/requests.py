"""What a Service asks for, and what it gets."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")


class Reason(enum.StrEnum):
    """Reason of the Service's ``lbipam.io/AddressAllocated`` condition."""

    ALLOCATED = "Allocated"
    POOL_EXHAUSTED = "PoolExhausted"
    NO_MATCHING_POOL = "NoMatchingPool"
    ADDRESS_IN_USE = "AddressInUse"
    ADDRESS_NOT_IN_POOL = "AddressNotInPool"
    INVALID_REQUEST = "InvalidRequest"
    PORT_CONFLICT = "PortConflict"
    ADDRESS_RESERVED = "AddressReserved"
    NAMESPACE_LIMIT_REACHED = "NamespaceLimitReached"
    ADDRESS_HELD = "AddressHeld"


@dataclass(frozen=True, order=True, slots=True)
class ServiceKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Port:
    port: int
    protocol: str

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """One Service's wishes, already lifted out of the Kubernetes object (text left raw)."""

    key: ServiceKey
    created: str
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    pools: tuple[str, ...] = ()
    load_balancer_ip: str | None = None
    requested_ips: tuple[str, ...] = ()
    sharing_key: str | None = None
    # Other namespaces whose Services it agrees to share an address with ("*": any).
    share_with: frozenset[str] = frozenset()
    ports: frozenset[Port] = frozenset()
    families: tuple[int, ...] = (4,)
    family_policy: str = "SingleStack"
    held: tuple[str, ...] = ()
    # Why the parser found the request contradictory (an InvalidRequest), if it did.
    invalid: str | None = None

    @property
    def seniority(self) -> tuple[str, str, str]:
        """Older sorts first: creationTimestamp, then namespace/name."""
        return (self.created, self.key.namespace, self.key.name)


@dataclass(frozen=True)
class Outcome:
    """The decision for one Service; ``addresses`` is exactly what its status must list."""

    addresses: tuple[str, ...]
    pools: tuple[str, ...]
    reason: Reason
    message: str
    allocated: tuple[str, ...] = ()
    released: tuple[str, ...] = ()
    # Released addresses the Service did not ask to lose, each with why it lost them.
    revoked: Mapping[str, str] = field(default_factory=dict)
    displaced: tuple[ServiceKey, ...] = ()
    # Its sharing group's other members, when its addresses changed: they follow the oldest.
    followers: tuple[ServiceKey, ...] = ()
    # Refused only because a pool that would serve is not yet protected: retried, not reported.
    waiting: bool = False
    # A PreferDualStack Service served without its second family: retried when pools change.
    partial: bool = False
    # Addresses it got back from a hold after release, each with when it had let it go
    # (seconds since the epoch).
    kept: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason is Reason.ALLOCATED


class Refusal(Exception):
    """Why a Service gets nothing new now: its condition's reason and message."""

    def __init__(self, reason: Reason, message: str, *, waiting: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        # A pool that could serve is only waiting for its protection: not a verdict yet.
        self.waiting = waiting
