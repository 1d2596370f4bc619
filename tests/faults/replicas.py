"""Two operator replicas electing a leader, and the faults a node can do to the one leading."""

from __future__ import annotations

import datetime
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from tests.controlplane import ControlPlane
from tests.faults.partition import Partition
from tests.operator_process import OperatorProcess

LEASE = "lbipam-leader"
# Short timings so that a takeover fits in a test: a frozen leader is fenced after 3 s.
ELECTION = {
    "LBIPAM_LEADER_ELECTION": "true",
    "LBIPAM_LEASE_DURATION": "4",
    "LBIPAM_RENEW_DEADLINE": "3",
    "LBIPAM_RETRY_PERIOD": "0.5",
}
LEASE_SECONDS = float(ELECTION["LBIPAM_LEASE_DURATION"])
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def identity(process: OperatorProcess) -> str:
    """The replica's name in the Lease: host name and process id."""
    assert process.popen is not None
    return f"{socket.gethostname()}-{process.popen.pid}"


def moments(replica: OperatorProcess, text: str) -> list[datetime.datetime]:
    """When the replica's log says `text`, by the log's own clock (one machine, one clock)."""
    found = []
    for line in replica.logs(10**7).splitlines():
        match = _STAMP.match(line)
        if match and text in line:
            found.append(datetime.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f"))
    return found


def leading(process: OperatorProcess) -> bool:
    try:
        return any(
            line.startswith("lbipam_leader ") and float(line.split()[1]) == 1.0
            for line in process.metrics().splitlines()
        )
    except OSError:
        return False


def _ready(process: OperatorProcess) -> bool:
    try:
        return process.http(process.health_port, "/readyz")[0] == 200
    except OSError:
        return False


def wait_for(probe: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Replicas:
    """Two `lbipam run` processes with leader election on, their Lease in `namespace`."""

    def __init__(self, plane: ControlPlane, namespace: str, **settings: str) -> None:
        self.namespace = namespace
        self.plane = plane
        self.settings = dict(ELECTION, LBIPAM_NAMESPACE=namespace, **settings)
        self.all: tuple[OperatorProcess, OperatorProcess] = (
            OperatorProcess(plane, **self.settings),
            OperatorProcess(plane, **self.settings),
        )

    def behind(self, partition: Partition, kubeconfig: Path) -> None:
        """Before `start`: the first replica reaches the API server, with `kubeconfig`'s
        credentials, only through the partition's relay."""
        settings = {k: v for k, v in self.settings.items() if k != "KUBECONFIG"}
        relayed = partition.relayed(kubeconfig)
        self.all[0].cleanup()  # never started, but its log file exists
        self.all = (partition.replica(self.plane, relayed, **settings), self.all[1])

    def start(self, timeout: float = 30) -> Replicas:
        """The first starts and leads, then the second joins as the follower."""
        first, second = self.all
        first.start()
        wait_for(lambda: leading(first), "the first replica to lead", timeout)
        second.start()
        return self

    def leaders(self) -> list[OperatorProcess]:
        return [replica for replica in self.all if leading(replica)]

    def serving(self) -> list[OperatorProcess]:
        """Leaders that are also ready: their state is rebuilt and Kopf is watching."""
        return [replica for replica in self.leaders() if _ready(replica)]

    def leader(self, timeout: float = 30) -> OperatorProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.leaders()
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no replica leads after {timeout}s:\n{self.logs()}")

    def kill_leader(self) -> None:
        """kill -9, then start it again at once, as the kubelet restarts a crashed pod."""
        leader = self.leader()
        leader.kill()
        leader.start(wait=False)

    def freeze_leader(self, seconds: float) -> None:
        """SIGSTOP the leader for `seconds` (past its Lease), then SIGCONT."""
        popen = self.leader().popen
        assert popen is not None
        popen.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            popen.send_signal(signal.SIGCONT)

    def steal_lease(self, api: client.ApiClient, holder: str = "intruder") -> None:
        """Overwrite the Lease as another candidate would, renewed just now. The leader
        renews it every second: a renewal between the read and the write is a 409 (CI), and
        the thief reads again, as a candidate would."""
        leases = client.CoordinationV1Api(api)
        for _ in range(10):
            lease = leases.read_namespaced_lease(LEASE, self.namespace)
            stamp = datetime.datetime.now(datetime.UTC)
            lease.spec.holder_identity = holder
            lease.spec.renew_time = stamp
            lease.spec.acquire_time = stamp
            try:
                leases.replace_namespaced_lease(LEASE, self.namespace, lease)
                return
            except client.ApiException as error:
                if error.status != 409:
                    raise
        raise AssertionError("the Lease changed under every one of 10 attempts to steal it")

    def ensure_running(self) -> None:
        """Whatever a fault did, both processes run (a frozen one is woken)."""
        for replica in self.all:
            if replica.popen is not None and replica.popen.poll() is None:
                replica.popen.send_signal(signal.SIGCONT)
            else:
                replica.start(wait=False)

    def refused(self) -> list[str]:
        """Writes the API server's admission (deploy/guardrails.yaml) refused."""
        return [
            line
            for replica in self.all
            for line in replica.logs(10**7).splitlines()
            if "denied request" in line
        ]

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- replica {index} ({replica.log_path}):\n{replica.logs(lines)}"
            for index, replica in enumerate(self.all)
        )

    def cleanup(self) -> None:
        for replica in self.all:
            if replica.popen is not None and replica.popen.poll() is None:
                replica.popen.send_signal(signal.SIGCONT)
            replica.cleanup()
