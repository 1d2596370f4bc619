"""What docs/reference.md says the cluster must look like, judged from the objects alone.

Independent of the operator's code: pools are parsed here with `ipaddress`, readiness,
admission and free space are recomputed from the IPPools and the Services' statuses. The chaos
driver asks it after every step; each finding is a `Violation` with the invariant it breaks.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lbipam.controllers.claims import CLAIM_GRACE
from tests.faults.checker import REASONS, Held, _interval, _may_share, consenting

FINALIZER = "lbipam.io/protection"
HELD_SINCE = "lbipam.io/held-since"
# A claim whose Service does not show its address may stand this long: a pass keeps a claim
# younger than the operator's grace (a write may be in flight), and one a leader cut off
# between its status write and the claim's release leaves behind is collected after it.
CLAIM_SLACK = CLAIM_GRACE + 10.0
HOLD_SLACK = 15.0  # seconds a hold may outlive its end: the operator looks every second
MANAGED_BY = ("app.kubernetes.io/managed-by", "lbipam")
FAMILIES = {"IPv4": 4, "IPv6": 6}
Span = tuple[int, int]  # inclusive


@dataclass(frozen=True)
class Violation:
    invariant: str  # a short name: duplicate, outside-pool, moved, pool-gone, counts, ...
    text: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.text}"


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(spans: list[Span], holes: Iterable[Span]) -> list[Span]:
    result = spans
    for hole_start, hole_end in holes:
        cut: list[Span] = []
        for start, end in result:
            if end < hole_start or start > hole_end:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start - 1))
            if end > hole_end:
                cut.append((hole_end + 1, end))
        result = cut
    return result


def _entry(text: str, first_last: bool) -> tuple[int, Span]:
    """An IPPool entry as (family, span); IPv4 CIDRs up to /30 lose both ends.

    (docs/reference.md, "Network and broadcast addresses")
    """
    family, start, end = _interval(text)
    cidr = family == 4 and "/" in text and not first_last
    if cidr and ipaddress.ip_network(text.strip(), strict=False).prefixlen <= 30:
        start, end = start + 1, end - 1
    return family, (start, end)


@dataclass
class PoolModel:
    """One IPPool as the contract reads it."""

    name: str
    body: Mapping[str, Any]
    usable: dict[int, list[Span]]  # what it hands out
    # What its holders keep: usable plus the ends of IPv4 CIDRs and x.x.x.0/255 (docs/reference.md:
    # "A Service that already holds such an address keeps it").
    covered: dict[int, list[Span]]
    conflict_with: str | None = None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> PoolModel:
        spec = body.get("spec") or {}
        first_last = bool(spec.get("allowFirstLastIPs"))
        spans: dict[int, list[Span]] = defaultdict(list)
        whole: dict[int, list[Span]] = defaultdict(list)
        for text in spec.get("addresses") or []:
            family, span = _entry(text, first_last)
            spans[family].append(span)
            whole[family].append(_entry(text, True)[1])
        holes: dict[int, list[Span]] = defaultdict(list)
        for text in spec.get("exclude") or []:
            family, start, end = _interval(text)
            holes[family].append((start, end))
        usable, covered = {}, {}
        for family in (4, 6):
            kept = _subtract(_merge(spans.get(family, ())), holes.get(family, ()))
            if family == 4 and spec.get("avoidBuggyIPs"):
                kept = _subtract(kept, _buggy(kept))
            if kept:
                usable[family] = kept
            if inside := _subtract(_merge(whole.get(family, ())), holes.get(family, ())):
                covered[family] = inside
        return cls(body["metadata"]["name"], body, usable, covered)

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.body.get("spec") or {}

    @property
    def deleting(self) -> bool:
        return bool(self.body["metadata"].get("deletionTimestamp"))

    @property
    def seniority(self) -> tuple[str, str]:
        return (self.body["metadata"].get("creationTimestamp") or "", self.name)

    @property
    def ready(self) -> bool:
        return not (self.deleting or self.spec.get("disabled") or self.conflict_with)

    def contains(self, address: str) -> bool:
        """The pool may hand the address out."""
        return _within(address, self.usable)

    def covers(self, address: str) -> bool:
        """A holder of the address may keep it because of this pool."""
        return _within(address, self.covered)

    def size(self) -> int:
        return sum(b - a + 1 for spans in self.usable.values() for a, b in spans)

    def count_in(self, addresses: Iterable[str]) -> int:
        return sum(1 for address in addresses if self.contains(address))

    def accepts(self, service: ServiceModel) -> bool:
        """The pool's selectors match the Service and its namespace."""
        return _matches(self.spec.get("serviceSelector"), service.labels) and _matches(
            self.spec.get("namespaceSelector"), service.namespace_labels
        )


def _within(address: str, spans: Mapping[int, list[Span]]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(a <= int(ip) <= b for a, b in spans.get(ip.version, ()))


def _buggy(spans: list[Span]) -> list[Span]:
    holes = []
    for start, end in spans:
        for base in range(start & ~0xFF, end + 1, 256):
            holes += [(base, base), (base + 255, base + 255)]
    return holes


def _matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for rule in selector.get("matchExpressions") or []:
        key, op, values = rule["key"], rule["operator"], rule.get("values") or []
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def pool_models(
    pools: Iterable[Mapping[str, Any]], nodes: Iterable[str] = ()
) -> dict[str, PoolModel]:
    """Every pool, with the younger of two overlapping pools marked in conflict; a Node's
    address is never handed out (docs/reference.md "Node addresses"), its holders keep it."""
    models = sorted((PoolModel.of(body) for body in pools), key=lambda p: p.seniority)
    for ip in map(ipaddress.ip_address, nodes):
        for model in models:
            if ip.version in model.usable:
                model.usable[ip.version] = _subtract(model.usable[ip.version], [(int(ip), int(ip))])
    for index, young in enumerate(models):
        for old in models[:index]:
            if _overlap(young, old):
                young.conflict_with = old.name
                break
    return {pool.name: pool for pool in models}


def _overlap(a: PoolModel, b: PoolModel) -> bool:
    return any(
        x1 <= y2 and y1 <= x2
        for family, spans in a.usable.items()
        for x1, x2 in spans
        for y1, y2 in b.usable.get(family, ())
    )


@dataclass
class ServiceModel:
    """One handled Service's request, read from its object."""

    held: Held
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str]
    families: tuple[int, ...]  # wanted, in order
    policy: str
    named: tuple[str, ...]
    statics: dict[int, str]
    invalid: str | None
    body: Mapping[str, Any]

    @classmethod
    def of(cls, held: Held, body: Mapping[str, Any], ns_labels: Mapping[str, str]) -> ServiceModel:
        meta, spec = body["metadata"], body.get("spec") or {}
        annotations = meta.get("annotations") or {}
        order = tuple(FAMILIES[f] for f in spec.get("ipFamilies") or ["IPv4"])
        policy = spec.get("ipFamilyPolicy") or "SingleStack"
        families = (
            order[:1]
            if policy == "SingleStack"
            else order + tuple(f for f in (4, 6) if f not in order)
        )
        statics: dict[int, str] = {}
        invalid = None
        ips = [t.strip() for t in (annotations.get("lbipam.io/ips") or "").split(",") if t.strip()]
        for text in ips:
            ip = ipaddress.ip_address(text)
            if ip.version in statics:
                invalid = "two addresses of one family in lbipam.io/ips"
            statics[ip.version] = str(ip)
        if spec.get("loadBalancerIP"):
            ip = ipaddress.ip_address(spec["loadBalancerIP"])
            if statics.setdefault(ip.version, str(ip)) != str(ip):
                invalid = "spec.loadBalancerIP and lbipam.io/ips disagree"
        if any(f not in families for f in statics):
            invalid = "a requested address of a family the Service does not have"
        named = tuple(
            t.strip() for t in (annotations.get("lbipam.io/pool") or "").split(",") if t.strip()
        )
        return cls(
            held,
            meta.get("labels") or {},
            ns_labels,
            families,
            policy,
            named,
            statics,
            invalid,
            body,
        )

    def may_use(self, pool: PoolModel, static: bool) -> bool:
        """The pool may hand this Service a new address (docs/reference.md "Pool choice")."""
        if not pool.ready:
            return False
        if self.named:
            return pool.name in self.named
        return pool.accepts(self) and (static or bool(pool.spec.get("autoAssign", True)))


@dataclass
class Cluster:
    """One read of everything the oracle judges."""

    pools: dict[str, PoolModel]
    services: dict[str, ServiceModel]  # handled Services, by uid
    others: list[Held]  # Services lbipam must leave alone
    policies: list[Mapping[str, Any]]
    nodes: dict[str, str] = field(default_factory=dict)  # a Node's InternalIP/ExternalIP -> Node
    # Our IPAddress claims: address -> the Service of its parentRef ("namespace/name"), and of
    # those that are holds after release (annotated lbipam.io/held-since): address -> since.
    claims: dict[str, str] = field(default_factory=dict)
    holds: dict[str, float] = field(default_factory=dict)
    claimed_at: dict[str, float] = field(default_factory=dict)  # address -> its creation
    read_at: float = field(default_factory=time.time)

    def holders(self) -> dict[str, list[Held]]:
        found: dict[str, list[Held]] = defaultdict(list)
        for service in self.services.values():
            for address in service.held.addresses:
                found[address].append(service.held)
        return found

    def taken(self) -> set[str]:
        """Addresses nobody else may be handed: held by a Service or after release, or
        claimed less than CLAIM_SLACK ago (docs/reference.md § Address claims: a claim of
        a Service that let go of its address may stay until 60 s old, keeping it)."""
        young = {a for a in self.claims if self.claimed_young(a)}
        return set(self.holders()) | set(self.holds) | young

    def claimed_young(self, address: str) -> bool:
        """The address has a claim less than CLAIM_SLACK old."""
        made = self.claimed_at.get(address, 0.0)
        return address in self.claims and self.read_at < made + CLAIM_SLACK

    def held_for(self, address: str) -> str | None:
        """The Service an address is held for after release, if it is."""
        return self.claims[address] if address in self.holds else None


def cluster(
    pools: Iterable[Mapping[str, Any]],
    services: Iterable[tuple[Held, Mapping[str, Any]]],
    namespace_labels: Mapping[str, Mapping[str, str]],
    policies: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]] = (),
    claims: Iterable[Mapping[str, Any]] = (),
) -> Cluster:
    handled: dict[str, ServiceModel] = {}
    others = []
    for held, body in services:
        if held.handled:
            labels = namespace_labels.get(held.key.split("/")[0], {})
            handled[held.uid] = ServiceModel.of(held, body, labels)
        else:
            others.append(held)
    by_address = nodes_by_address(nodes)
    now = Cluster(pool_models(pools, by_address), handled, others, list(policies), by_address)
    for claim in claims:
        parent = (claim.get("spec") or {}).get("parentRef") or {}
        address = str(ipaddress.ip_address(claim["metadata"]["name"]))
        now.claims[address] = f"{parent.get('namespace')}/{parent.get('name')}"
        made = claim["metadata"].get("creationTimestamp")
        now.claimed_at[address] = _seconds(made) if made else 0.0
        since = (claim["metadata"].get("annotations") or {}).get(HELD_SINCE)
        if since:
            now.holds[address] = _seconds(since)
    return now


def _seconds(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---- the invariants ------------------------------------------------------------------------


def judge(now: Cluster, scope: set[str]) -> list[Violation]:
    """Every invariant that needs one read only; `scope` names the pools to check counts of."""
    found: list[Violation] = []
    found += duplicates(now)
    found += addresses(now)
    found += pending(now)
    found += pool_statuses(now, scope)
    found += policies(now)
    found += untouched(now)
    found += node_pools(now, scope)
    return found


def duplicates(now: Cluster) -> list[Violation]:
    return [
        Violation("duplicate", f"{address} is held by {', '.join(sorted(h.key for h in held))}")
        for address, held in now.holders().items()
        if len(held) > 1 and not _may_share(held)
    ]


def addresses(now: Cluster) -> list[Violation]:
    """Each held address lies in a pool, one per wanted family, as requested."""
    found = []
    for service in now.services.values():
        key, seen = service.held.key, set()
        for address in service.held.addresses:
            family = ipaddress.ip_address(address).version
            pools = [p for p in now.pools.values() if p.covers(address)]
            if not pools:
                found.append(Violation("outside-pool", f"{key} holds {address}, in no IPPool"))
            elif (
                service.named
                and not any(p.name in service.named for p in pools)
                and not _kept_while_naming_a_missing_pool(now, service)
            ):
                found.append(
                    Violation("outside-pool", f"{key} holds {address}, outside its named pools")
                )
            if family in seen or family not in service.families:
                found.append(Violation("families", f"{key} holds {service.held.addresses}"))
            seen.add(family)
            static = service.statics.get(family)
            if static is not None and static != address and service.invalid is None:
                found.append(Violation("static", f"{key} asked for {static} and holds {address}"))
        condition = service.held.condition or {}
        if condition.get("reason") not in REASONS:
            found.append(Violation("condition", f"{key}: condition {dict(condition) or None}"))
        elif not service.held.addresses and condition.get("status") != "False":
            found.append(Violation("condition", f"{key}: no address but {dict(condition)}"))
        elif service.invalid and condition.get("reason") != "InvalidRequest":
            found.append(
                Violation(
                    "condition", f"{key}: {service.invalid}, but reason {condition['reason']}"
                )
            )
    return found


def new_addresses(
    now: Cluster,
    before: Mapping[str, tuple[str, ...]],
    kept: Mapping[str, str] = {},
    owned: Mapping[str, str] = {},
) -> list[Violation]:
    """An address a Service did not hold at the last settled read came from a pool it may use,
    or was held after release for it then (`kept`: address -> for whom), or it is the
    Service's own, re-created since (`owned`: address -> who held it), from a pool that holds
    let-go addresses: the hold began and ended within the step, as holding does."""
    found = []
    holders = now.holders()
    for uid, service in now.services.items():
        for address in service.held.addresses:
            if address in before.get(uid, ()) or kept.get(address) == service.held.key:
                continue
            if owned.get(address) == service.held.key and _holds_let_go(now, address):
                continue
            static = ipaddress.ip_address(address).version in service.statics
            usable = [p.name for p in now.pools.values() if p.contains(address)]
            if any(service.may_use(now.pools[n], static) for n in usable):
                continue
            joined = [h for h in holders[address] if h.uid != uid and consenting(h, service.held)]
            if joined:
                continue  # shares the address of its sharing group
            found.append(
                Violation(
                    "new-address",
                    f"{service.held.key} got {address}, but none of the pools holding it "
                    f"({', '.join(usable) or 'none'}) is Ready and admits it",
                )
            )
    return found


def nodes_by_address(nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each Node's InternalIPs and ExternalIPs, to its name."""
    return {
        str(ipaddress.ip_address(entry["address"])): body["metadata"]["name"]
        for body in nodes
        for entry in (body.get("status") or {}).get("addresses") or ()
        if entry.get("type") in ("InternalIP", "ExternalIP")
    }


def node_addresses(
    now: Cluster, before: Mapping[str, tuple[str, ...]], known: Collection[str] | None = None
) -> list[Violation]:
    """No Service holds a Node's address it was not already holding at the last settled read;
    with `known`, only the addresses of those Nodes count (a Node that came up meanwhile may
    find its address handed out before the operator saw it: docs/reference.md)."""
    return [
        Violation(
            "node-address",
            f"{service.held.key} got {address}, an address of Node {now.nodes[address]}",
        )
        for uid, service in now.services.items()
        for address in service.held.addresses
        if address in now.nodes
        and (known is None or address in known)
        and address not in before.get(uid, ())
    ]


def _names_a_missing_pool(now: Cluster, service: ServiceModel) -> bool:
    return any(name not in now.pools for name in service.named)


def _kept_while_naming_a_missing_pool(now: Cluster, service: ServiceModel) -> bool:
    """A request naming a pool that does not exist is refused, and what the Service holds is
    kept (a typo loses nothing) while its condition says why."""
    condition = service.held.condition or {}
    return _names_a_missing_pool(now, service) and condition.get("reason") == "NoMatchingPool"


def _family_outcome(now: Cluster, service: ServiceModel, family: int, taken: Taken) -> str:
    """'ok' when a pool could serve this family now, 'soft' when none can, 'hard' on a refusal.

    Mirrors docs/reference.md: a named pool that does not exist, a static address in use or in
    no usable pool, and a port conflict in a sharing group refuse the whole request (hard).
    """
    if _names_a_missing_pool(now, service):
        return "hard"
    static = service.statics.get(family)
    if static is not None:
        shown = now.holders().get(static, [])
        rivals = [h for h in shown if h.uid != service.held.uid]
        if rivals and not _may_share([service.held, *rivals]):
            return "hard"
        if now.held_for(static) not in (None, service.held.key):
            return "hard"  # AddressHeld
        if now.claimed_young(static) and not shown:
            # A young claim no status shows, made by another replica or an earlier term (for
            # another Service, or for this one when its status write was lost), keeps the
            # address until 60 s old: AddressInUse, for now (docs/reference.md).
            return "hard"
        if any(reserved_against(p, static, service.held.key) for p in now.pools.values()):
            return "hard"
        if not all(
            has_room(now, service, p, static) for p in now.pools.values() if p.covers(static)
        ):
            return "soft"
        ok = any(p.contains(static) and service.may_use(p, True) for p in now.pools.values())
        return "ok" if ok else "hard"
    group = _group_address(now, service, family)
    if group is not None:
        # The registry hands out the group's address and nothing else, or refuses with
        # PortConflict; that address's pool need not be Ready (sharing is the user's choice).
        rivals = [h for h in now.holders()[group] if h.uid != service.held.uid]
        if any(reserved_against(p, group, service.held.key) for p in now.pools.values()):
            return "hard"
        if not all(has_room(now, service, p, group) for p in now.pools.values() if p.covers(group)):
            return "soft"  # joining counts for the namespace too, as a static request does
        return "ok" if _may_share([service.held, *rivals]) else "hard"
    ok = any(
        family in p.usable
        and service.may_use(p, False)
        and may_allocate(now, service, p, family, taken)
        for p in now.pools.values()
    )
    return "ok" if ok else "soft"


def pending(now: Cluster) -> list[Violation]:
    """No Service lacks an address a pool could give it now."""
    found = []
    taken = Taken(now.taken())
    for service in now.services.values():
        if service.invalid:
            continue
        have = {ipaddress.ip_address(a).version for a in service.held.addresses}
        outcome = {f: _family_outcome(now, service, f, taken) for f in service.families}
        if len(service.families) == 2 and _no_room_for_two(now, service):
            # Each family may fit the limit alone, not both: the second family is not owed.
            outcome[service.families[1]] = "soft"
        if service.policy == "RequireDualStack":
            owed = list(service.families) if all(o == "ok" for o in outcome.values()) else []
        elif service.policy == "PreferDualStack":
            primary, secondary = service.families
            owed = []
            if outcome[primary] == "ok" and outcome[secondary] in ("ok", "soft"):
                owed = [primary] + ([secondary] if outcome[secondary] == "ok" else [])
        else:
            owed = [service.families[0]] if outcome[service.families[0]] == "ok" else []
        missing = [f for f in owed if f not in have]
        if missing:
            found.append(
                Violation(
                    "pending",
                    f"{service.held.key} lacks an IPv{missing[0]} address a pool could give it "
                    f"(holds {service.held.addresses}, condition "
                    f"{(service.held.condition or {}).get('reason')})",
                )
            )
    return found


def _no_room_for_two(now: Cluster, service: ServiceModel) -> bool:
    """A pool the Service may use has a perNamespaceLimit its namespace cannot take two more
    addresses under (a dual-stack Service's two addresses count two)."""
    namespace = service.held.key.split("/")[0]
    for pool in now.pools.values():
        limit = pool.spec.get("perNamespaceLimit")
        if limit is None or not service.may_use(pool, True):
            continue
        others = namespace_holds(now, pool, namespace) - set(service.held.addresses)
        if len(others) + 2 > limit:
            return True
    return False


def _group_address(now: Cluster, service: ServiceModel, family: int) -> str | None:
    """The address of this family held by the oldest other member of the sharing group."""
    oldest = _oldest_in_group(now, service, family)
    return oldest[1] if oldest else None


def _oldest_in_group(
    now: Cluster, service: ServiceModel, family: int
) -> tuple[tuple[str, str], str] | None:
    """(seniority, address) of the oldest other group member with an address of `family`
    every holder of which consents with the Service (one key; one namespace or both ways)."""
    me = service.held
    if not me.sharing_key:
        return None
    holders = now.holders()
    candidates = sorted(
        ((s.held.created, s.held.key), address)
        for s in now.services.values()
        if s.held.uid != me.uid and consenting(me, s.held)
        for address in s.held.addresses
        if ipaddress.ip_address(address).version == family
        and (
            not service.named
            or any(now.pools[n].covers(address) for n in service.named if n in now.pools)
        )
        and all(h.uid == me.uid or consenting(me, h) for h in holders[address])
    )
    return candidates[0] if candidates else None


def followed_group(now: Cluster, service: ServiceModel, address: str) -> bool:
    """The Service gave `address` up for the one an older member of its sharing group holds."""
    family = ipaddress.ip_address(address).version
    oldest = _oldest_in_group(now, service, family)
    return (
        oldest is not None
        and oldest[0] < (service.held.created, service.held.key)
        and oldest[1] != address
        and oldest[1] in service.held.addresses
    )


def withdrawals(
    now: Cluster, before: Mapping[str, tuple[str, ...]]
) -> list[tuple[ServiceModel, ServiceModel, str]]:
    """(oldest, younger, address): Services of one sharing key that held `address` together at
    the last settled read, the younger of another namespace than the oldest and no longer
    consenting with it (either no longer lists the other's namespace)."""
    sharers: dict[tuple[str, str], list[ServiceModel]] = defaultdict(list)
    for uid, service in now.services.items():
        if service.held.sharing_key:
            for address in before.get(uid, ()):
                sharers[(address, service.held.sharing_key)].append(service)
    found = []
    for (address, _), group in sharers.items():
        oldest, *younger = sorted(group, key=lambda s: (s.held.created, s.held.key))
        found += [(oldest, s, address) for s in younger if not consenting(oldest.held, s.held)]
    return found


def consent_withdrawn(now: Cluster, before: Mapping[str, tuple[str, ...]]) -> list[Violation]:
    """Consent withdrawn across namespaces: the older keeps the address (while a pool it may
    keep it from covers it), the younger holds another one or says why not."""
    found = []
    for older, younger, address in withdrawals(now, before):
        scope = [p for p in now.pools.values() if p.name in older.named] or now.pools.values()
        if (
            address not in older.held.addresses
            and any(p.covers(address) for p in scope)
            and not followed_group(now, older, address)
        ):
            found.append(
                Violation(
                    "consent-withdrawn",
                    f"{older.held.key} lost {address} (holds {older.held.addresses}) when "
                    f"{younger.held.key}, younger, could no longer share it",
                )
            )
        family = ipaddress.ip_address(address).version
        moved = any(ipaddress.ip_address(a).version == family for a in younger.held.addresses)
        condition = younger.held.condition or {}
        if address in younger.held.addresses or not (moved or condition.get("status") == "False"):
            found.append(
                Violation(
                    "consent-withdrawn",
                    f"{younger.held.key} holds {younger.held.addresses} (condition "
                    f"{condition.get('reason')}) after {older.held.key}, older, and it no "
                    f"longer both consent to share {address}",
                )
            )
    return found


def pool_statuses(now: Cluster, scope: set[str]) -> list[Violation]:
    """Counts equal a recount from the Services; Ready says the truth; protection is on."""
    found = []
    held = list(now.taken())
    for name in sorted(scope & now.pools.keys()):
        pool = now.pools[name]
        if pool.deleting:
            continue
        meta, status = pool.body["metadata"], pool.body.get("status") or {}
        total = pool.size()
        allocated = pool.count_in(held)
        want = {"total": str(total), "allocated": str(allocated)}
        reserved = sum(reserved_free(pool, held, family, None) for family in pool.usable)
        want["available"] = str(total - allocated - reserved)
        want["reserved"] = str(reserved)
        want["held"] = str(pool.count_in(now.holds))
        shown = {k: status.get(k) for k in want}
        if shown != want:
            found.append(Violation("counts", f"IPPool {name} shows {shown}, recount {want}"))
        if status.get("observedGeneration") != meta.get("generation"):
            found.append(Violation("pool-status", f"IPPool {name} status is of an old generation"))
        ready = {c.get("type"): c for c in status.get("conditions") or []}.get("Ready") or {}
        expected = "True" if pool.ready else "False"
        if ready.get("status") != expected:
            found.append(
                Violation(
                    "pool-status",
                    f"IPPool {name} Ready={ready.get('status')}, "
                    f"expected {expected} (conflict: {pool.conflict_with})",
                )
            )
        if (pool.ready or pool.count_in(held)) and FINALIZER not in (meta.get("finalizers") or []):
            found.append(
                Violation("protection", f"IPPool {name} is Ready or held without {FINALIZER}")
            )
    return found


def _restricting(body: Mapping[str, Any]) -> set[str] | None:
    """The ipBlocks a Service's source ranges need, or None when they restrict nothing."""
    spec = body.get("spec") or {}
    ranges = spec.get("loadBalancerSourceRanges") or []
    # docs/reference.md "Source ranges": only `externalTrafficPolicy: Local` gets a policy (with
    # Cluster, SNAT hides the client, so the policy would drop allowed clients).
    local = spec.get("externalTrafficPolicy") == "Local"
    if not ranges or not spec.get("selector") or not local:
        return None
    networks = {ipaddress.ip_network(r, strict=False) for r in ranges}
    # A /0 opens its family; nothing to enforce when every family given is open.
    open_families = {n.version for n in networks if n.prefixlen == 0}
    if {n.version for n in networks} <= open_families:
        return None
    return {str(n) for n in networks if n.version not in open_families or n.prefixlen == 0}


def policies(now: Cluster) -> list[Violation]:
    """Exactly one managed policy per handled Service with ranges, matching them; no other."""
    found = []
    wanted = {
        s.held.uid: (s, blocks)
        for s in now.services.values()
        if (blocks := _restricting(s.body)) is not None
    }
    owned: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for policy in now.policies:
        meta = policy["metadata"]
        if (meta.get("labels") or {}).get(MANAGED_BY[0]) != MANAGED_BY[1]:
            continue
        owners = [r["uid"] for r in meta.get("ownerReferences") or [] if r.get("controller")]
        if not owners or owners[0] not in wanted:
            found.append(Violation("policy", f"NetworkPolicy {meta['name']} is managed, unwanted"))
            continue
        owned[owners[0]].append(policy)
    for uid, (service, blocks) in wanted.items():
        mine = owned.get(uid, [])
        if len(mine) != 1:
            found.append(Violation("policy", f"{service.held.key} has {len(mine)} policies"))
            continue
        spec = mine[0].get("spec") or {}
        shown = {
            peer["ipBlock"]["cidr"]
            for rule in spec.get("ingress") or []
            for peer in rule.get("from") or []
            if "ipBlock" in peer
        }
        selector = (spec.get("podSelector") or {}).get("matchLabels")
        if shown != blocks or selector != (service.body.get("spec") or {}).get("selector"):
            found.append(
                Violation(
                    "policy",
                    f"{service.held.key}: policy admits {sorted(shown)}, "
                    f"ranges say {sorted(blocks)}",
                )
            )
    return found


def untouched(now: Cluster) -> list[Violation]:
    """Services that are not ours carry nothing of ours (nothing else writes LB status here)."""
    return [
        Violation("not-ours", f"{held.key} is not ours but shows {held.addresses} / our condition")
        for held in now.others
        if held.condition is not None or held.addresses
    ]


# ---- reservations and perNamespaceLimit (docs/reference.md "Reservations", "Per-namespace
# limit"): their own functions, used by the invariants above and by the chaos driver.


@dataclass(frozen=True)
class _Reserved:
    family: int
    span: Span
    namespace: str
    service: str | None

    def matches(self, key: str) -> bool:
        namespace, name = key.split("/")
        return namespace == self.namespace and self.service in (None, name)


def _reservations(pool: PoolModel) -> list[_Reserved]:
    found = []
    for entry in pool.spec.get("reservations") or []:
        for text in entry.get("addresses") or []:
            family, start, end = _interval(text)
            service = entry.get("service") or None
            found.append(_Reserved(family, (start, end), entry["namespace"], service))
    return found


def reserved_against(pool: PoolModel, address: str, key: str) -> bool:
    """The Ready pool sets the address aside for another tenant than the Service `key`."""
    ip = ipaddress.ip_address(address)
    return (
        pool.ready
        and pool.contains(address)
        and any(
            r.family == ip.version and r.span[0] <= int(ip) <= r.span[1] and not r.matches(key)
            for r in _reservations(pool)
        )
    )


def reserved_free(pool: PoolModel, held: Iterable[str], family: int, key: str | None) -> int:
    """Usable addresses of the family the pool sets aside and nobody holds; only those not
    for Service `key` when it is given."""
    others = [
        r for r in _reservations(pool) if r.family == family and (key is None or not r.matches(key))
    ]
    if not others:
        return 0  # most pools reserve nothing: no need to read every held address
    taken = {int(ip) for ip in map(ipaddress.ip_address, held) if ip.version == family}
    count = 0
    for r in others:
        for start, end in pool.usable.get(family, ()):
            low, high = max(start, r.span[0]), min(end, r.span[1])
            if low <= high:
                count += high - low + 1 - sum(1 for v in taken if low <= v <= high)
    return count


def namespace_holds(now: Cluster, pool: PoolModel, namespace: str) -> set[str]:
    """The addresses of the pool the namespace's Services hold, each once, and those held
    after release for its Services (a hold counts toward perNamespaceLimit)."""
    held = {
        address
        for service in now.services.values()
        if service.held.key.split("/")[0] == namespace
        for address in service.held.addresses
    }
    held |= {a for a in now.holds if now.claims[a].split("/")[0] == namespace}
    return {address for address in held if pool.covers(address)}


def has_room(now: Cluster, service: ServiceModel, pool: PoolModel, ip: str | None) -> bool:
    """The pool's perNamespaceLimit lets the Service's namespace take `ip` (or a new address)."""
    limit = pool.spec.get("perNamespaceLimit")
    if limit is None:
        return True
    holds = namespace_holds(now, pool, service.held.key.split("/")[0])
    return ip in holds or len(holds) < limit


@dataclass
class Taken:
    """The addresses held at one read, each pool's count of them made once: a recount per
    Service is quadratic, and the soak asks about 5,000 Services."""

    held: set[str]
    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    def used(self, pool: PoolModel, family: int) -> int:
        """How many held addresses of the family lie in the pool."""
        key = (pool.name, family)
        if key not in self.counts:
            of_family = (a for a in self.held if ipaddress.ip_address(a).version == family)
            self.counts[key] = pool.count_in(of_family)
        return self.counts[key]


def may_allocate(
    now: Cluster, service: ServiceModel, pool: PoolModel, family: int, taken: Taken
) -> bool:
    """The pool has a free address of the family for this Service, within its limit."""
    total = sum(b - a + 1 for a, b in pool.usable.get(family, ()))
    others = reserved_free(pool, taken.held, family, service.held.key)
    return total - taken.used(pool, family) - others > 0 and has_room(now, service, pool, None)


def new_reserved(now: Cluster, before: Mapping[str, tuple[str, ...]]) -> list[Violation]:
    """An address a Service did not hold at the last settled read is not set aside for
    another tenant."""
    return [
        Violation("reservation", f"{service.held.key} got {address}, reserved by {pool.name}")
        for uid, service in now.services.items()
        for address in service.held.addresses
        if address not in before.get(uid, ())
        for pool in now.pools.values()
        if reserved_against(pool, address, service.held.key)
    ]


def namespace_limits(
    now: Cluster, before: Mapping[str, tuple[str, ...]], kept: Mapping[str, str] = {}
) -> list[Violation]:
    """A namespace above a pool's perNamespaceLimit got none of those addresses since the last
    settled read (lowering a limit takes nothing away; a shared address counts once; `kept`,
    the addresses held after release then, for whom, count as the namespace's)."""
    found = []
    for pool in now.pools.values():
        limit = pool.spec.get("perNamespaceLimit")
        # A pool that is not Ready hands nothing out: what an older pool overlapping it hands
        # out is not held "from" it (a static request it contains is refused, as it should).
        if limit is None or not pool.ready:
            continue
        for namespace in {s.held.key.split("/")[0] for s in now.services.values()}:
            holds = namespace_holds(now, pool, namespace)
            had = {
                address
                for uid, service in now.services.items()
                if service.held.key.split("/")[0] == namespace
                for address in before.get(uid, ())
            } | {a for a, key in kept.items() if key.split("/")[0] == namespace}
            if len(holds) > limit and holds - had:
                found.append(
                    Violation(
                        "limit",
                        f"namespace {namespace} holds {len(holds)} of {pool.name} "
                        f"(perNamespaceLimit {limit}) and got {sorted(holds - had)}",
                    )
                )
    return found


# ---- holds after release (docs/reference.md, `releaseHold`) and Node addresses ---------------


def _holds_let_go(now: Cluster, address: str) -> bool:
    """The oldest pool containing the address has a releaseHold now."""
    return _release_hold(now, address) > 0


def _release_hold(now: Cluster, address: str) -> float:
    """The releaseHold, in seconds, of the oldest pool containing the address, as it is now."""
    pools = sorted((p for p in now.pools.values() if p.covers(address)), key=lambda p: p.seniority)
    return _duration(str(pools[0].spec.get("releaseHold") or "0s")) if pools else 0.0


def hold_end(now: Cluster, address: str) -> float:
    """When the hold on `address` ends: since + the releaseHold of its oldest pool as it is now."""
    return now.holds[address] + _release_hold(now, address)


def _duration(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total, number = total + int(number) * units[char], ""
    return total + (int(number) if number else 0)


def holds(now: Cluster, clock: float) -> list[Violation]:
    """Claims are the holders' addresses (a claim may outlive its holder's address for
    CLAIM_SLACK) and the holds, nobody else has a held address, a hold ends on time, and a
    Service re-created during its hold has its address back."""
    found = []
    holders = now.holders()
    for address, key in sorted(now.claims.items()):
        if address in now.holds:
            if holders.get(address) and not any(h.key == key for h in holders[address]):
                taken = ", ".join(h.key for h in holders[address])
                found.append(
                    Violation("hold-taken", f"{address} is held for {key}, {taken} has it")
                )
            if clock > hold_end(now, address) + HOLD_SLACK:
                found.append(Violation("hold-overdue", f"the hold on {address} for {key} is over"))
        elif not any(h.key == key for h in holders.get(address, ())) and (
            clock > now.claimed_at.get(address, 0.0) + CLAIM_SLACK
        ):
            found.append(
                Violation("claims", f"{address} is claimed for {key}, who does not hold it")
            )
    for address, held in sorted(holders.items()):
        if address not in now.claims:
            found.append(Violation("claims", f"{address} is held by {held[0].key}, unclaimed"))
    for service in now.services.values():
        found += _refused_held(now, service)
        for address in now.holds:
            if now.claims[address] == service.held.key and _takes_back(now, service, address):
                found.append(
                    Violation(
                        "hold-kept",
                        f"{service.held.key} is back but {address}, held for it, is not "
                        f"(holds {service.held.addresses})",
                    )
                )
    return found


def _refused_held(now: Cluster, service: ServiceModel) -> list[Violation]:
    """A plain request for an address held for another Service waits with AddressHeld,
    naming that Service."""
    condition = service.held.condition or {}
    return [
        Violation("hold-refusal", f"{service.held.key} asked for {static}: {dict(condition)}")
        for static in service.statics.values()
        if (key := now.held_for(static)) not in (None, service.held.key)
        and not (service.named or service.invalid or service.held.sharing_key)
        and static not in now.nodes
        and not any(reserved_against(p, static, service.held.key) for p in now.pools.values())
        and any(p.contains(static) and service.may_use(p, True) for p in now.pools.values())
        and all(has_room(now, service, p, static) for p in now.pools.values() if p.covers(static))
        and not (condition.get("reason") == "AddressHeld" and key in condition.get("message", ""))
    ]


def _takes_back(now: Cluster, service: ServiceModel, address: str) -> bool:
    """Whether the Service must get the address held for it back: it asks for nothing that
    decides otherwise (a static address, a pool, a sharing group) and a Ready pool has it."""
    family = ipaddress.ip_address(address).version
    return (
        family in service.families
        and not service.statics
        and not service.named
        and not service.invalid
        and not service.held.sharing_key
        and any(p.ready and p.contains(address) for p in now.pools.values())
        and address not in now.nodes
    )


def node_pools(now: Cluster, scope: set[str]) -> list[Violation]:
    """A pool containing a Node's address says so, naming the Node; one without does not."""
    found = []
    for name in sorted(scope & now.pools.keys()):
        pool = now.pools[name]
        if pool.deleting:
            continue
        status = pool.body.get("status") or {}
        overlap = {c.get("type"): c for c in status.get("conditions") or []}.get(
            "OverlapsNodeAddress"
        ) or {}
        named = sorted({node for a, node in now.nodes.items() if pool.covers(a)})
        if named and (
            overlap.get("status") != "True"
            or not all(node in (overlap.get("message") or "") for node in named)
        ):
            found.append(
                Violation("node-pool", f"IPPool {name} contains Nodes {named}, shows {overlap}")
            )
        elif not named and overlap.get("status") == "True":
            found.append(Violation("node-pool", f"IPPool {name} overlaps no Node, shows {overlap}"))
    return found
