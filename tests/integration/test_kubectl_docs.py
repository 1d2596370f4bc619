"""docs/kubectl-lbipam.md: its cluster built as it says, its commands run, their outputs as shown.

`LBIPAM_WRITE_DOCS=1` writes the outputs of this run into the page instead of comparing them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.controlplane import ControlPlane
from tests.kit import (
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    eventually,
    ingress_ips,
    our_condition,
    wait_service,
)
from tests.operator_process import OperatorProcess
from tests.plugin import kubectl_lbipam

PAGE = REPO / "docs" / "kubectl-lbipam.md"
CONSOLE = re.compile(r"```console\n\$ kubectl lbipam (?P<args>[^\n]*)\n(?P<shown>.*?)```", re.S)
YAML = re.compile(r"```yaml\n(.*?)```", re.S)


def normal(text: str) -> list[str]:
    """Lines as compared: ages and the API server's port vary from run to run, and with them
    the width of table columns."""
    text = re.sub(r"\b\d+[smhd]\b", "<age>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    return [" ".join(line.split()) for line in text.splitlines()]


def settled(service: Any) -> bool:
    return bool(ingress_ips(service)) or our_condition(service) is not None


def ready(custom: client.CustomObjectsApi, name: str) -> bool:
    pool = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    conditions = (pool.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture
def docs_cluster(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    networking: client.NetworkingV1Api,
    operator: OperatorProcess,
) -> Iterator[None]:
    """The page's objects, made one at a time, in a cluster with no other pool."""

    def others() -> list[str]:
        """Earlier tests' namespaces and pools still there: the page's outputs list every pool."""
        namespaces = [n.metadata.name for n in core.list_namespace().items]
        pools = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        return [n for n in namespaces if n.startswith("t-")] + [
            p["metadata"]["name"] for p in pools
        ]

    try:
        eventually(lambda: not others(), timeout=120, what="earlier tests' namespaces and pools")
    except AssertionError as error:
        raise AssertionError(f"{error}; still there: {others()}") from None
    objects = list(yaml.safe_load_all(YAML.findall(PAGE.read_text())[0]))
    try:
        for body in objects:
            meta = body["metadata"]
            if body["kind"] == "IPPool":
                custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
                eventually(lambda n=meta["name"]: ready(custom, n), what="the pool to be ready")
            elif body["kind"] == "Namespace":
                core.create_namespace(body)
            else:
                core.create_namespaced_service(meta["namespace"], body)
                wait_service(core, meta["namespace"], meta["name"], settled, what="a decision")
        eventually(lambda: networking.list_namespaced_network_policy("shop").items, what="policy")
        yield
    finally:
        core.delete_namespace("shop")
        for body in objects:
            if body["kind"] == "IPPool":
                custom.delete_cluster_custom_object(
                    GROUP, VERSION, PLURAL, body["metadata"]["name"]
                )


def test_every_output_on_the_page_is_what_the_command_prints(
    control_plane: ControlPlane, docs_cluster: None, tmp_path: Path
) -> None:
    page = PAGE.read_text()
    (new_pools,) = [b for b in YAML.findall(page) if b.startswith("# new-pools.yaml")]
    (tmp_path / "new-pools.yaml").write_text(new_pools)
    shown = {m["args"]: normal(m["shown"]) for m in CONSOLE.finditer(page)}

    def run_all() -> dict[str, subprocess.CompletedProcess[str]]:
        return {args: kubectl_lbipam(control_plane, *args.split(), cwd=tmp_path) for args in shown}

    # Pool status is written in batches after the Services settle: the page shows the cluster
    # once the operator has caught up, so the commands run again until it has (or 60 s pass).
    deadline = time.monotonic() + 60
    runs = run_all()
    while time.monotonic() < deadline and any(
        normal(runs[args].stdout) != lines for args, lines in shown.items()
    ):
        time.sleep(2)
        runs = run_all()
    assert len(runs) == 7
    assert runs["validate new-pools.yaml"].returncode == 1
    assert all(r.returncode == 0 for args, r in runs.items() if not args.startswith("validate"))
    if os.environ.get("LBIPAM_WRITE_DOCS"):
        written = CONSOLE.sub(
            lambda m: f"```console\n$ kubectl lbipam {m['args']}\n{runs[m['args']].stdout}```", page
        )
        PAGE.write_text(written)
        return
    for args, lines in shown.items():
        assert normal(runs[args].stdout) == lines, args
