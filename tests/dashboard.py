"""The Grafana dashboard of deploy/grafana/ as Grafana reads it, and the ConfigMap that carries it.

Grafana fills a query's variables before Prometheus sees it; the functions here do the same, so
the tests run exactly the PromQL a user's Grafana would. `python -m tests.dashboard` writes the
ConfigMap again after the JSON changed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tests.kit import REPO

FOLDER = REPO / "deploy" / "grafana"
DASHBOARD = FOLDER / "lbipam-dashboard.json"
CONFIGMAP = FOLDER / "lbipam-dashboard-configmap.yaml"
KEY = DASHBOARD.name
ALL = "$__all"

# Grafana's template syntax: $name or ${name}.
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
# What Grafana escapes in a value put into a regex matcher (prometheusSpecialRegexEscape).
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")
_LABEL_VALUES = re.compile(r"^label_values\(\s*([^,\s]+)\s*,\s*(\w+)\s*\)$")

_HEADER = """\
# Generated from {json} by `python -m tests.dashboard`: edit the JSON, not this file
# (tests/unit/test_dashboard.py checks that it embeds exactly the JSON).
# Grafana's dashboard sidecar loads every ConfigMap labelled grafana_dashboard: "1" in the
# namespaces it searches: apply it there (README.md beside it).
"""


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    expr: str
    instant: bool


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, also those inside a collapsed row; rows themselves are not panels."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panels(panel)
        else:
            yield panel


def queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(panel["title"], target["expr"], bool(target.get("instant")))
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def variable(dashboard: Mapping[str, Any], name: str) -> dict[str, Any]:
    found = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    assert len(found) == 1, f"the dashboard has {len(found)} variables named {name}"
    return dict(found[0])


def label_values(query_variable: Mapping[str, Any]) -> tuple[str, str]:
    """(series selector, label) of a `label_values(selector, label)` variable."""
    match = _LABEL_VALUES.match(query_variable["query"]["query"])
    assert match, f"not a label_values query: {query_variable['query']}"
    return match[1], match[2]


def selected(query_variable: Mapping[str, Any], values: list[str] | str) -> str:
    """What Grafana puts for a query variable into PromQL: the all-value for "All", else the
    chosen values, regex-escaped, as one alternation when several."""
    if values == ALL:
        return str(query_variable["allValue"])
    escaped = [_REGEX_SPECIAL.sub(r"\\\\\g<0>", v.replace("\\", "\\\\\\\\")) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def time_variables(
    scrape_interval: int, start: float, end: float, max_data_points: int = 1000
) -> dict[str, str]:
    """$__interval, $__rate_interval and $__range as Grafana fills them for a time range, when
    the data source's "Scrape interval" is Prometheus' own, for a panel `max_data_points` wide."""
    span = end - start
    if span / max_data_points > scrape_interval:
        # Then Grafana rounds range/points with a table of "nice" steps not reproduced here.
        raise ValueError(f"a {span:.0f}s range is too long for a {scrape_interval}s scrape")
    # Grafana's floor is the scrape interval, and no step may yield over 11,000 points.
    interval = max(scrape_interval, math.ceil(span / 11000), 1)
    rate_interval = max(interval + scrape_interval, 4 * scrape_interval)
    return {
        "__interval": f"{interval}s",
        "__rate_interval": f"{rate_interval}s",
        "__range": f"{round(span)}s",
    }


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """The query with every variable filled; one the caller did not give fails loudly."""

    def fill(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr}")
        return values[name]

    return _VARIABLE.sub(fill, expr)


def configmap(dashboard_json: str) -> str:
    """The ConfigMap for Grafana's dashboard sidecar, with the JSON verbatim in a block scalar."""
    body = "".join(f"    {line}\n" if line else "\n" for line in dashboard_json.splitlines())
    return (
        _HEADER.format(json=KEY)
        + "apiVersion: v1\n"
        + "kind: ConfigMap\n"
        + "metadata:\n"
        + "  name: lbipam-dashboard\n"
        + "  labels:\n"
        + '    grafana_dashboard: "1"\n'
        + "    app.kubernetes.io/name: lbipam\n"
        + "    app.kubernetes.io/part-of: lbipam\n"
        + "data:\n"
        + f"  {KEY}: |\n"
        + body
    )


if __name__ == "__main__":
    CONFIGMAP.write_text(configmap(DASHBOARD.read_text()))
    print(f"wrote {CONFIGMAP.relative_to(REPO)}")
