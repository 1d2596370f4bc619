"""The Grafana dashboard shows what two real replicas did, as a real Prometheus scraped it.

Every panel's query runs exactly as Grafana would send it (variables filled the way Grafana
fills them for this scrape interval), for the pool variable's "All" and for one chosen pool.
"""

from __future__ import annotations

import math
import time
from typing import Any

from kubernetes import client

from tests import dashboard
from tests.controlplane import ControlPlane
from tests.kit import (
    SHORT_LEASE,
    Pools,
    create,
    eventually,
    service_manifest,
    subnet,
    wait_address,
    wait_policy,
    wait_reason,
)
from tests.operator_process import OperatorProcess, leader_of
from tests.prometheus import Prometheus, PrometheusError


def evaluate(
    prometheus: Prometheus, query: dashboard.PanelQuery, expr: str, window: dict[str, str]
) -> list[dict[str, Any]]:
    """The series a panel gets: an instant query at the range's end, or a range query with
    Grafana's step, as the panel asks."""
    if query.instant:
        result = prometheus.api("query", query=expr, time=window["end"])["result"]
        return [{"metric": r["metric"], "values": [r["value"]]} for r in result]
    series: list[dict[str, Any]] = prometheus.api("query_range", query=expr, **window)["result"]
    return series


def what_is_wrong(
    prometheus: Prometheus, query: dashboard.PanelQuery, expr: str, window: dict[str, str]
) -> str:
    """Why the panel would show nothing useful; "" when it shows data."""
    try:
        series = evaluate(prometheus, query, expr, window)
    except PrometheusError as error:
        return f"Prometheus refused it: {error}"
    if not series:
        return "no series"
    if all(math.isnan(float(v)) for s in series for _, v in s["values"]):
        return "only NaN"
    return ""


def check_every_panel(prometheus: Prometheus, pool: str, start: float, end: float) -> None:
    """Every query shows data for "All" and for `pool`; a chosen pool shows only that pool; the
    fail-over and the repeated failure are counted."""
    board = dashboard.load()
    times = dashboard.time_variables(prometheus.scrape_interval, start, end)
    window = {"start": str(start), "end": str(end), "step": times["__interval"]}
    pool_variable = dashboard.variable(board, "pool")
    selector, label = dashboard.label_values(pool_variable)
    listed = prometheus.api(
        f"label/{label}/values", **{"match[]": [selector]}, start=str(start), end=str(end)
    )
    assert pool in listed

    problems = []
    for choice in (dashboard.ALL, [pool]):
        values = {**times, "pool": dashboard.selected(pool_variable, choice)}
        for query in dashboard.queries(board):
            expr = dashboard.substitute(query.expr, values)
            wrong = what_is_wrong(prometheus, query, expr, window)
            if wrong:
                problems.append(f"{query.panel} (pool {choice}): {wrong}\n    {expr}")
    assert problems == [], "\n".join(problems)

    one_pool = {**times, "pool": dashboard.selected(pool_variable, [pool])}
    shown = {
        query.expr: evaluate(prometheus, query, dashboard.substitute(query.expr, one_pool), window)
        for query in dashboard.queries(board)
    }
    for query in dashboard.queries(board):
        if "$pool" in query.expr:
            pools = {s["metric"].get("pool") for s in shown[query.expr]}
            assert pools == {pool}, f"{query.panel} shows pools {pools} for {pool}"

    def panel(title: str) -> list[dict[str, Any]]:
        [expr] = [q.expr for q in dashboard.queries(board) if q.panel == title]
        return shown[expr]

    assert float(panel("Fail-overs")[0]["values"][0][1]) >= 1, "the takeover is not counted"
    # Every reason has a series from 0; only the pool that ran out shows a rate.
    failing = {
        series["metric"]["reason"]
        for series in panel("Allocation failures by reason")
        if max(float(v) for _, v in series["values"]) > 0
    }
    assert failing == {"PoolExhausted"}


def test_every_panel_shows_the_pools_services_and_a_fail_over_of_two_real_replicas(
    without_session_operator: None,
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    networking: client.NetworkingV1Api,
    pools: Pools,
    namespace: str,
) -> None:
    replicas = [OperatorProcess(control_plane, **SHORT_LEASE).start() for _ in range(2)]
    prometheus = Prometheus(*(r.metrics_port for r in replicas), scrape_interval=1)
    try:
        prometheus.wait_ready()
        start = time.time()
        leader = eventually(lambda: leader_of(replicas), what="a leader")
        follower = next(r for r in replicas if r is not leader)
        on_leader = f'instance="127.0.0.1:{leader.metrics_port}"'
        on_follower = f'instance="127.0.0.1:{follower.metrics_port}"'

        # A pool of 4: a firewalled Service and three more fill it; one goes, one comes.
        net = subnet()
        pool = pools.create([f"{net}.0/30"])
        firewalled = service_manifest(
            "fw", loadBalancerSourceRanges=["192.0.2.0/24"], externalTrafficPolicy="Local"
        )
        create(core, namespace, firewalled)
        for name in ("a", "b", "c"):
            create(core, namespace, service_manifest(name))
        for name in ("fw", "a", "b", "c"):
            wait_address(core, namespace, name)
        wait_policy(networking, namespace, "lbipam-fw")
        core.delete_namespaced_service("a", namespace)
        create(core, namespace, service_manifest("d"))
        wait_address(core, namespace, "d")

        # Two more wait; each failure is an increase of a series that started at 0.
        failures = f'lbipam_allocation_failures_total{{{on_leader},reason="PoolExhausted"}}'
        for count, name in enumerate(("late", "later"), start=1):
            create(core, namespace, service_manifest(name))
            wait_reason(core, namespace, name, "PoolExhausted")
            prometheus.wait_at_least(failures, count)
        prometheus.wait_value(f"lbipam_services_pending{{{on_leader}}}", 2)

        # The leader dies; the follower takes over, and hands out the addresses the pool gains.
        leader.kill()
        eventually(lambda: leader_of([follower]), timeout=15, what="the follower to lead")
        follower.wait_ready()
        pools.patch(pool, {"addresses": [f"{net}.0/29"]})
        for name in ("late", "later"):
            wait_address(core, namespace, name)
        prometheus.wait_value(f"lbipam_services_pending{{{on_follower}}}", 0)
        allocated = f'lbipam_allocations_total{{{on_follower},pool="{pool}",result="allocated"}}'
        prometheus.wait_value(allocated, 2)
        # The last events need a full rate window of scrapes behind them, as on a live board.
        time.sleep(4 * prometheus.scrape_interval)
        check_every_panel(prometheus, pool, start, time.time())
    finally:
        prometheus.stop()
        for replica in replicas:
            replica.cleanup()
