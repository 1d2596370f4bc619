"""A node's data-plane daemons: kube-proxy (iptables mode) and kube-router (firewall only), each
run inside the node's namespace and talking to the API server through the node's relay."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import yaml

from tests.controlplane.build import ensure_binaries, ensure_kube_router
from tests.controlplane.cluster import SERVICE_CIDRS, Process
from tests.dataplane.netns import Netns

RELAY_PORT = 6443  # on the node's own loopback
POD_CIDRS = "198.18.16.0/20,2001:db8:10::/48"


def node_kubeconfig(admin_kubeconfig: Path, folder: Path) -> Path:
    """The admin kubeconfig pointed at the relay on the node's loopback."""
    config = yaml.safe_load(admin_kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{RELAY_PORT}"
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _in(netns: Netns, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns.name, *argv]


def kube_proxy(netns: Netns, node_name: str, kubeconfig: Path, folder: Path) -> Process:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "mode": "iptables",
        "clusterCIDR": POD_CIDRS,
        "detectLocalMode": "ClusterCIDR",
        # Zero means "leave the kernel's value": kube-proxy then writes no sysctl for conntrack.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # Node ports on 127.0.0.1 would need the route_localnet sysctl.
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "0s"},
        "nodePortAddresses": ["primary"],
        "oomScoreAdj": 0,
    }
    path = folder / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    binary = str(ensure_binaries() / "kube-proxy")
    return Process("kube-proxy", _in(netns, binary, f"--config={path}", "--v=2"), folder)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is missing: install Debian's iptables and ipset")
    return found


def _workarounds(folder: Path) -> Path:
    """A folder of wrappers, first on kube-router's PATH, for two flaws of kube-router v2.1.0.

    1. Each IP family's handler restores every ipset it saw at its last `ipset save`, the other
       family's included, so an update to one family's sets (a new range, a new pod) is reverted
       by the other family's restore. With `ipset save` showing nothing, each handler restores
       only the sets it has just computed. (Its clean-up then never finds unused sets to destroy;
       they go with the node's namespace.)
    2. IPv6 ipsets are created as `inet6:KUBE-…` but named `KUBE-…` in the ip6tables rules, so no
       IPv6 rule can be restored and no IPv6 NetworkPolicy is enforced
       (cloudnativelabs/kube-router#1653). ip6tables-restore gets the rename the upstream fix makes.
    """
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    ipset, restore = _tool("ipset"), _tool("ip6tables-restore")
    wrappers = {
        "ipset": f'[ "$1" = save ] && exit 0\nexec {ipset} "$@"',
        "ip6tables-restore": (
            f"sed 's/--match-set KUBE-/--match-set inet6:KUBE-/g' | exec {restore} \"$@\""
        ),
    }
    for name, body in wrappers.items():
        wrapper = bin_dir / name
        wrapper.write_text(f"#!/bin/sh\n{body}\n")
        wrapper.chmod(0o755)
    return bin_dir


def kube_router(netns: Netns, node_name: str, kubeconfig: Path, folder: Path) -> Process:
    """kube-router's firewall only, both IP families, with `_workarounds` on its PATH."""
    path = f"PATH={_workarounds(folder)}:{os.environ.get('PATH', '')}"
    args = [
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-ipv4=true",
        "--enable-ipv6=true",
        *(f"--service-cluster-ip-range={cidr}" for cidr in SERVICE_CIDRS.split(",")),
        "--v=1",
    ]
    return Process("kube-router", _in(netns, "env", path, str(ensure_kube_router()), *args), folder)


def wait_for_chain(netns: Netns, chain: str, *, family: int = 4, timeout: float = 60) -> None:
    """Wait until a daemon has installed `chain` in the namespace's filter or nat table."""
    save = "iptables-save" if family == 4 else "ip6tables-save"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f":{chain} " in netns.run(save):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{chain} never appeared in {netns.name}")
