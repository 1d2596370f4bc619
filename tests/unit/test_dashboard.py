"""The Grafana dashboard of deploy/grafana/: the ConfigMap carries exactly the JSON, every panel
reads the chosen data source, and every query asks for metrics the operator really exports.

Whether each query runs and shows data is tests/integration/test_dashboard.py's story.
"""

from __future__ import annotations

import asyncio
import re

import yaml
from prometheus_client.samples import Sample

from lbipam.ipam.pool import PoolSpec
from lbipam.ipam.registry import Registry
from lbipam.runtime.metrics import Metrics
from tests import dashboard
from tests.unit.test_metrics import request

# A metric name and its label matchers, if any, as they stand in a query.
METRIC = re.compile(r"\b(lbipam_[a-z_]+)(\{[^}]*\})?")


async def scrape_after_one_of_each_event() -> list[Sample]:
    registry = Registry()
    registry.apply_pool(PoolSpec("one", ("10.0.0.1/32",)))
    metrics = Metrics()
    async with metrics.leading_with(registry) as snapshots:
        metrics.record(registry.ensure(request("first")))
        metrics.record(registry.ensure(request("second")))  # the pool is full: a failure
        metrics.released(registry.pool_of(a) for a in registry.release(request("first").key, 0.0))
        metrics.latency.observe(0.1)
        snapshots.publish()
        return [s for family in metrics.collector_registry.collect() for s in family.samples]


def exported() -> dict[str, set[str]]:
    """Every sample name a scrape of a leading replica shows after one of each event, with the
    names of its labels."""
    samples = asyncio.run(scrape_after_one_of_each_event())
    names: dict[str, set[str]] = {}
    for sample in samples:
        names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_the_sidecar_configmap_embeds_exactly_the_dashboard_json() -> None:
    text = dashboard.DASHBOARD.read_text()
    manifest = yaml.safe_load(dashboard.CONFIGMAP.read_text())

    assert manifest["kind"] == "ConfigMap"
    assert manifest["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert manifest["data"] == {dashboard.KEY: text}
    assert dashboard.CONFIGMAP.read_text() == dashboard.configmap(text), (
        "the ConfigMap is stale: run `python -m tests.dashboard`"
    )


def test_every_panel_reads_the_data_source_the_user_picks() -> None:
    board = dashboard.load()
    source = dashboard.variable(board, "datasource")
    assert (source["type"], source["query"]) == ("datasource", "prometheus")

    chosen = {"type": "prometheus", "uid": "${datasource}"}
    for panel in dashboard.panels(board):
        assert panel["datasource"] == chosen, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == chosen, panel["title"]
    assert dashboard.variable(board, "pool")["datasource"] == chosen


def test_the_pool_variable_lists_the_pools_the_operator_reports() -> None:
    pool = dashboard.variable(dashboard.load(), "pool")
    selector, label = dashboard.label_values(pool)

    assert label == "pool"
    assert "pool" in exported()[selector]
    assert pool["multi"] and pool["includeAll"]


def test_every_query_uses_exported_metrics_and_follows_the_pool_variable() -> None:
    names = exported()
    for query in dashboard.queries(dashboard.load()):
        used = METRIC.findall(query.expr)
        assert used, f"{query.panel}: {query.expr} reads no lbipam metric"
        for name, matchers in used:
            assert name in names, f"{query.panel}: the operator exports no {name}"
            if "pool" in names[name]:
                assert 'pool=~"$pool"' in matchers, f"{query.panel}: {name} ignores $pool"


def test_every_metric_the_operator_exports_has_a_panel() -> None:
    shown = {
        name for q in dashboard.queries(dashboard.load()) for name, _ in METRIC.findall(q.expr)
    }
    # A histogram is shown through its buckets; _count and _sum add nothing to a quantile.
    families = {re.sub(r"_(bucket|count|sum|created)$", "", n) for n in exported()}
    missing = {f for f in families if not any(s.startswith(f) for s in shown)}
    assert missing == set()
