"""The alerting rules shipped in deploy/prometheus/ load in Prometheus and fire when they should.

An operator of a cluster either loads `rules.yaml` into a plain Prometheus or applies
`prometheusrule.yaml` with the Prometheus Operator; both must carry the same alerts.
`promtool` (Debian package `prometheus`) checks the rule file and runs `rules_test.yaml`,
which fires every alert from synthetic series and keeps it quiet below its threshold.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yaml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yaml"
PROMETHEUS_RULE = PROMETHEUS_DIR / "prometheusrule.yaml"

EXPECTED_ALERTS = {
    "LBIPAMPoolNearlyFull",
    "LBIPAMPoolExhausted",
    "LBIPAMServicesPending",
    "LBIPAMAllocationFailuresRising",
    "LBIPAMNoLeader",
}

# Every metric the operator exports (docs/reference.md, "Metrics").
KNOWN_METRICS = {
    "lbipam_pool_addresses_total",
    "lbipam_pool_addresses_allocated",
    "lbipam_pool_addresses_available",
    "lbipam_allocations_total",
    "lbipam_allocation_failures_total",
    "lbipam_releases_total",
    "lbipam_allocation_latency_seconds",
    "lbipam_services_pending",
    "lbipam_networkpolicies_managed",
    "lbipam_leader",
}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed, so the alerting rules cannot be checked. "
            "Install it with: apt-get install -y prometheus",
            pytrace=False,
        )
    return path


def _run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_prometheus_accepts_the_rule_file() -> None:
    result = _run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, f"promtool check rules failed:\n{result.stdout}{result.stderr}"
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


def test_every_alert_fires_on_its_condition_and_stays_quiet_below_it() -> None:
    result = _run_promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_cover_every_alert() -> None:
    tested = {
        case["alertname"]
        for test in _load(RULES_TEST)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == EXPECTED_ALERTS


def test_prometheus_operator_users_get_the_same_rules_as_plain_prometheus_users() -> None:
    plain = _load(RULES)
    crd = _load(PROMETHEUS_RULE)
    assert crd["apiVersion"] == "monitoring.coreos.com/v1"
    assert crd["kind"] == "PrometheusRule"
    assert crd["spec"]["groups"] == plain["groups"]


def test_each_alert_has_a_severity_and_says_what_is_wrong() -> None:
    alerts = _alerts(_load(RULES)["groups"])
    assert {a["alert"] for a in alerts} == EXPECTED_ALERTS
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert alert["annotations"]["summary"].strip(), name
        assert alert["annotations"]["description"].strip(), name
        assert "for" in alert, f"{name} would fire on a single evaluation"


def test_pool_alerts_name_the_pool_and_failure_alerts_name_the_reason() -> None:
    by_name = {a["alert"]: a for a in _alerts(_load(RULES)["groups"])}
    for name in ("LBIPAMPoolNearlyFull", "LBIPAMPoolExhausted"):
        annotations = by_name[name]["annotations"]
        assert "{{ $labels.pool }}" in annotations["summary"], name
        assert "{{ $labels.pool }}" in annotations["description"], name
    failures = by_name["LBIPAMAllocationFailuresRising"]["annotations"]
    assert "{{ $labels.reason }}" in failures["summary"]
    assert "{{ $labels.reason }}" in failures["description"]


def test_rules_only_use_metrics_the_operator_exports() -> None:
    for alert in _alerts(_load(RULES)["groups"]):
        used = set(re.findall(r"\blbipam_[a-z_]+", alert["expr"]))
        assert used, alert["alert"]
        assert used <= KNOWN_METRICS, f"{alert['alert']} uses unknown {used - KNOWN_METRICS}"
