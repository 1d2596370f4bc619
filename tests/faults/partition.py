"""A replica cut off from the API server: packets dropped, not refused, as on a partition.

The replica runs in a network namespace of its own (the data-plane kit's, with its clean-up: the
namespace, and with it every rule in it, is deleted afterwards) where the API server is reached
through a relay on the namespace's loopback, as the data-plane nodes reach it. The partition is an
iptables DROP of that path in both directions inside the namespace: no reset, no ICMP, nothing
leaves the namespace. It holds no address but loopback and has no route out.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.controlplane import ControlPlane
from tests.dataplane.netns import Netns, sweep
from tests.dataplane.tcp import api_relay
from tests.operator_process import OperatorProcess

RELAY_PORT = 6443
# Both directions of the path between the replica and the relay, inside the namespace only.
_DROPS = (("--dport", str(RELAY_PORT)), ("--sport", str(RELAY_PORT)))


class NetnsOperator(OperatorProcess):
    """`lbipam run` inside a network namespace; its health and metrics are read from in there."""

    def __init__(self, plane: ControlPlane, netns: Netns, **settings: str) -> None:
        super().__init__(plane, **settings)
        self.netns = netns

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns.name, *super().command()]

    def http(self, port: int, path: str) -> tuple[int, str]:
        return self.netns.inside(lambda: OperatorProcess.http(self, port, path))


class Partition:
    """A namespace whose only way to the API server is a relay that `cut` silences."""

    def __init__(self, plane: ControlPlane) -> None:
        sweep()  # namespaces of sessions that were killed before they could clean up
        self.netns = Netns("partition")
        self.cut_now = False
        self.files: list[Path] = []
        try:
            self.relay = api_relay(self.netns, RELAY_PORT, ("127.0.0.1", plane.api_port))
        except BaseException:
            self.netns.delete()
            raise

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{RELAY_PORT}"

    def relayed(self, kubeconfig: Path) -> Path:
        """A copy of `kubeconfig` whose API server is reached through the relay."""
        config = yaml.safe_load(kubeconfig.read_text())
        config["clusters"][0]["cluster"]["server"] = self.server
        handle, name = tempfile.mkstemp(prefix="lbipam-relayed-", suffix=".kubeconfig")
        with open(handle, "w") as out:
            out.write(yaml.safe_dump(config))
        self.files.append(Path(name))
        return Path(name)

    def replica(self, plane: ControlPlane, kubeconfig: Path, **settings: Any) -> NetnsOperator:
        return NetnsOperator(plane, self.netns, KUBECONFIG=str(kubeconfig), **settings)

    def _rules(self, action: str) -> None:
        for match in _DROPS:
            self.netns.run(
                "iptables", action, "OUTPUT", "-o", "lo", "-p", "tcp", *match, "-j", "DROP"
            )

    def cut(self) -> None:
        self._rules("-I")
        self.cut_now = True

    def heal(self) -> None:
        if self.cut_now:
            self._rules("-D")
            self.cut_now = False

    def close(self) -> None:
        self.relay.close()
        self.netns.delete()
        for path in self.files:
            path.unlink(missing_ok=True)
