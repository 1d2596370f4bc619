"""`kubectl lbipam validate FILE…`: IPPool manifests checked offline by the operator's own
parser, then against the cluster when it can be reached: the API server's own validation (a
server-side dry run), overlaps with pools, ServiceCIDRs and node addresses, and the holders a
shrink would take addresses from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from lbipam.api import POOL_API_VERSION
from lbipam.clock import timestamp
from lbipam.ipam.addresses import parse_address
from lbipam.ipam.pool import Pool
from lbipam.ipam.registry import PoolState, RangeKind
from lbipam.kube.errors import ApiError
from lbipam.kubectl.cluster import Body, Cluster, api_message
from lbipam.kubectl.render import Style, counted, table, wrap
from lbipam.kubectl.report import Report
from lbipam.kubectl.view import View
from lbipam.objects import held_addresses, node_addresses, pool_spec, service_key


@dataclass
class Checked:
    """One pool of a file and what is wrong with it."""

    file: str
    name: str
    addresses: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    body: Body | None = field(default=None, repr=False)


def read_pools(path: Path) -> list[Checked]:
    """The IPPools of a manifest file; a file that cannot be read is one failed entry."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        return [Checked(str(path), "-", errors=[f"cannot read it: {error}"])]
    pools = []
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict) or doc.get("kind") != "IPPool":
            continue
        name = str((doc.get("metadata") or {}).get("name") or f"document {index + 1}")
        checked = Checked(str(path), name, body=doc)
        if doc.get("apiVersion") != POOL_API_VERSION:
            checked.errors.append(
                f"apiVersion is {doc.get('apiVersion')!r}; use {POOL_API_VERSION}"
            )
        if not (doc.get("metadata") or {}).get("name"):
            checked.errors.append("metadata.name is missing")
        pools.append(checked)
    if not pools:
        return [Checked(str(path), "-", warnings=["no IPPool in this file"])]
    return pools


def check_offline(checked: Checked) -> None:
    """What lbipam itself would make of the spec: the same parser the operator runs."""
    if checked.body is None or checked.errors:
        return
    pool = Pool.build(pool_spec(checked.body), ())
    if pool.error is not None:
        checked.errors.append(pool.error)
        return
    checked.addresses = sum(c.total for c in pool.counts())
    if not checked.addresses:
        checked.errors.append("it hands out no address: everything listed is excluded or skipped")
    if pool.spec.disabled:
        checked.warnings.append("disabled: it hands out no new address")


async def check_online(
    checked: Checked, cluster: Cluster, view: View, nodes: Sequence[Body]
) -> None:
    body = checked.body
    if body is None or checked.errors:
        return
    try:
        await cluster.dry_run_pool(body)
    except ApiError as error:
        if error.status == 403:
            checked.warnings.append(
                "the API server's own checks were skipped: you may not create IPPools"
            )
        else:
            checked.errors.append(f"the API server refuses it: {api_message(error)}")
            return
    existing = view.pool(checked.name)
    created = existing["metadata"]["creationTimestamp"] if existing else timestamp()
    before = {str(service_key(s)): held_addresses(s) for s in view.snapshot.services}
    change = view.try_pool(body, created)
    summary = view.summary(checked.name)
    if summary.state is PoolState.CONFLICT:
        checked.errors.append(f'it overlaps the older pool "{summary.conflict_with}"')
    for other in change.conflicts:
        if other != checked.name and view.summary(other).conflict_with == checked.name:
            checked.errors.append(
                f'it overlaps the younger pool "{other}", which would stop handing out addresses'
            )
    if cidrs := summary.overlapping(RangeKind.SERVICE_CIDR):
        names = ", ".join(cidrs)
        checked.errors.append(
            f"it overlaps ServiceCIDR {names}: those addresses are ClusterIPs and never handed out"
        )
    if change.revoked:
        lost = "; ".join(f"{key} ({', '.join(before.get(str(key), ()))})" for key in change.revoked)
        checked.errors.append(f"the change takes addresses away from: {lost}")
    if change.moving:
        checked.warnings.append(
            f"these Services name it and would move: {', '.join(map(str, change.moving))}"
        )
    pool = Pool.build(pool_spec(body), ())
    for node, address in ((n["metadata"]["name"], a) for n in nodes for a in node_addresses(n)):
        if pool.offers(parse_address(address)):
            checked.errors.append(f"it would hand out {address}, an address of node {node}")


def validate_report(
    checked: list[Checked], cluster_note: str, style: Style, strict: bool
) -> Report:
    failed = any(c.errors or (strict and c.warnings) for c in checked)
    data = {
        "ok": not failed,
        "cluster": cluster_note,
        "pools": [{k: v for k, v in asdict(c).items() if k != "body"} for c in checked],
    }
    rows = []
    for c in checked:
        verdict = (
            style(counted(len(c.errors), "error"), "bad")
            if c.errors
            else style(counted(len(c.warnings), "warning"), "warn")
            if c.warnings
            else style("ok", "good")
        )
        rows.append([c.file, c.name, str(c.addresses) if c.addresses else "-", verdict])
    lines = [*table(["FILE", "POOL", "ADDRESSES", "RESULT"], rows), ""]
    for c in checked:
        for kind, messages, tone in (("error", c.errors, "bad"), ("warning", c.warnings, "warn")):
            for message in messages:
                lines += wrap(f"{style(kind, tone)}: {c.name}: {message}", "  ")
    if lines[-1]:
        lines.append("")
    return Report(data, [*lines, cluster_note], ok=not failed)
