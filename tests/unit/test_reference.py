"""docs/reference.md is the contract: it names every setting, metric, reason and pool field the
code has, with the code's defaults, and the documentation's links lead somewhere."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml
from prometheus_client.core import CounterMetricFamily

from lbipam.ipam.registry import PoolState, Registry
from lbipam.ipam.requests import Reason
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings

REPO = Path(__file__).resolve().parents[2]
REFERENCE = (REPO / "docs" / "reference.md").read_text()
PAGES = [REPO / "README.md", REPO / "ARCHITECTURE.md", REPO / "CONTRIBUTING.md"]
PAGES += [*sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]


def table_rows(heading: str) -> list[list[str]]:
    """The cells of the first table under `heading`, header and rule left out."""
    section = REFERENCE.split(f"\n{heading}\n")[1]
    lines = section[section.index("\n|") + 1 :].split("\n\n")[0].splitlines()
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in lines[2:]]


def shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def test_every_setting_is_documented_with_its_default() -> None:
    documented = {row[0].strip("`"): row[1] for row in table_rows("## Settings")}
    for spec in dataclasses.fields(Settings):
        env = spec.metadata["env"]
        assert env in documented, env
        if spec.default != "":
            assert documented[env] == f"`{shown(spec.default)}`", env
    assert len(documented) == len(dataclasses.fields(Settings))


async def test_every_metric_is_documented_with_its_type() -> None:
    documented = {row[0].strip("`"): row[1] for row in table_rows("## Metrics")}
    metrics = Metrics()
    exported: dict[str, str] = {}
    async with metrics.leading_with(Registry()):
        for family in metrics.collector_registry.collect():
            counter = family.type == "counter" or isinstance(family, CounterMetricFamily)
            exported[family.name + ("_total" if counter else "")] = family.type
    assert exported == documented


def test_every_condition_reason_of_a_service_is_documented() -> None:
    documented = {row[1].strip("`") for row in table_rows("### What lbipam writes on a Service")}
    assert documented == {reason.value for reason in Reason}


def test_every_reason_a_pool_is_not_ready_is_documented() -> None:
    rows = table_rows("### Status and conditions")
    ready = {row[2].strip("`") for row in rows if row[0] == "`Ready`"}
    assert ready == {state.value for state in PoolState}


def test_every_field_of_the_ippool_crd_is_in_the_example() -> None:
    crd = yaml.safe_load((REPO / "deploy" / "crds" / "ippools.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    example = REFERENCE.split("## IPPool")[1].split("```yaml")[1].split("```")[0]
    fields = example.split("\nspec:\n")[1]  # metadata's own keys are not the CRD's
    in_example = set(re.findall(r"^ {2}(\w+):", fields, re.M))
    assert set(schema["spec"]["properties"]) | set(schema["status"]["properties"]) == in_example


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings."""
    titles = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", t.lower()).replace(" ", "-") for t in titles}


def test_every_link_between_the_pages_leads_to_a_file_and_heading_that_exist() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith("http"):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in anchors(linked), f"{page.name}: {target}"


def test_the_readme_stays_a_page_a_user_reads_in_one_go() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 250
