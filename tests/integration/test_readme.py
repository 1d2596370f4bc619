"""The README's quick starts, run as a user would run them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client

from tests.controlplane.cluster import die_with_parent, free_port
from tests.kit import GROUP, PLURAL, REPO, VERSION, Kubectl, eventually
from tests.operator_process import OperatorProcess

EXAMPLE_RANGES = ("192.168.10.", "192.168.20.", "2001:db8:1:")


def quick_start() -> list[tuple[str, list[str]]]:
    """(command, output lines) for each `$ kubectl …` of the README's real-cluster quick start."""
    text = (REPO / "README.md").read_text()
    block = text.split("## Quick start")[1].split("```console")[1].split("```")[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.strip().splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return [(command, output) for command, output in steps if command.startswith("kubectl ")]


def columns(lines: list[str], *names: str) -> dict[str, tuple[str, ...]]:
    """Rows of a `kubectl get` table keyed by NAME, keeping the named columns."""
    header = lines[0].split()
    picked = [header.index(n) for n in names]
    return {row.split()[0]: tuple(row.split()[i] for i in picked) for row in lines[1:] if row}


def shows_as_readme(kubectl: Kubectl, args: list[str], shown: list[str]) -> None:
    """Wait until `kubectl get …` shows the README's addresses (or counts).

    Services applied together are served in any order: which of the two automatic ones gets
    the lower address may differ from the README's run, so those compare as a set.
    """
    kept = {"services": ("EXTERNAL-IP",), "ippools": ("TOTAL", "ALLOCATED")}[args[1]]
    wanted = columns(shown, *kept)
    fixed = {"sample-lb-fixip"} if args[1] == "services" else set(wanted)

    def matches() -> bool:
        got = columns(kubectl(*args).stdout.splitlines(), *kept)
        free = sorted(got.get(name, ()) for name in set(wanted) - fixed)
        return all(got.get(name) == wanted[name] for name in fixed) and free == sorted(
            wanted[name] for name in set(wanted) - fixed
        )

    try:
        eventually(matches, timeout=30, what=f"`kubectl {' '.join(args)}` to show {wanted}")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{kubectl(*args).stdout}") from None


def test_the_real_cluster_quick_start_gives_what_the_readme_shows(
    kubectl: Kubectl,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    operator: OperatorProcess,
) -> None:
    # The example pools serve every namespace: earlier tests' pools in the example ranges
    # would conflict with them, and their pending Services would take addresses from them.
    def examples_free() -> bool:
        pools = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
        entries = [e for p in pools for e in p["spec"]["addresses"]]
        tests = [n for n in core.list_namespace().items if n.metadata.name.startswith("t-")]
        return not tests and not [e for e in entries if e.startswith(EXAMPLE_RANGES)]

    eventually(examples_free, timeout=90, what="earlier tests' namespaces and pools to go")
    steps = quick_start()
    assert [c for c, _ in steps][:3] == [
        "kubectl apply -k deploy/",
        "kubectl apply -f deploy/examples/pools.yaml",
        "kubectl apply -f deploy/examples/services.yaml",
    ]
    try:
        for command, shown in steps:
            args = command.split()[1:]
            if args[:2] == ["apply", "-k"]:
                # The namespace first: see test_deploy's server dry run.
                kubectl("apply", "-f", str(REPO / "deploy/namespace.yaml"))
            args = [str(REPO / a) if a.startswith("deploy/") else a for a in args]
            if args[0] == "get":
                shows_as_readme(kubectl, args, shown)
            elif args[0] == "describe":
                out = kubectl(*args).stdout
                assert "LoadBalancer Ingress:     192.168.10.100 (VIP)" in out
                eventually(
                    lambda args=args: "AddressAllocated" in kubectl(*args).stdout,
                    what="the AddressAllocated Event",
                )
            else:
                kubectl(*args)
    finally:
        kubectl("delete", "-f", str(REPO / "deploy/examples/services.yaml"), "--ignore-not-found")
        kubectl("delete", "-f", str(REPO / "deploy/examples/pools.yaml"), "--ignore-not-found")


def test_make_run_without_a_cluster_starts_one_and_prints_how_to_watch_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(LBIPAM_METRICS_PORT=str(free_port()), LBIPAM_HEALTH_PORT=str(free_port()))
    demo = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"BIN={Path(sys.executable).parent}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    seen: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 120
        awaited = {"allocated 192.168.10.100", "created NetworkPolicy lbipam-sample-lb-fw"}
        for line in demo.stdout:
            seen.append(line)
            awaited = {text for text in awaited if text not in line}
            if not awaited or time.monotonic() > deadline:
                break
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(60)
    output = "".join(seen)
    assert re.search(r"export KUBECONFIG=\S+/kubeconfig", output), output
    assert "kubectl get services -A --watch" in output
    assert "default/sample-lb-fixip: allocated 192.168.10.100 from public" in output
