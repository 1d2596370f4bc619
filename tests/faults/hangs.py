"""Hangs, not refusals: who wrote what, and when, while the control plane or the network stalled.

The session's API server is restarted with two more things: a static token per replica, so each
replica writes as its own user, and an audit log of those users' writes. A line of that log is
written once a write has been stored (stage ResponseComplete), so the log tells, for every write
that landed, its author and a time no earlier than when it landed, independently of what the
replicas believe or log about themselves.
"""

from __future__ import annotations

import datetime
import json
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.controlplane import ControlPlane
from tests.controlplane.cluster import Process
from tests.faults.checker import Snapshot
from tests.faults.replicas import ELECTION, LEASE, Replicas, identity, moments
from tests.operator_process import OperatorProcess

USERS = ("lbipam-replica-0", "lbipam-replica-1")
WRITES = ("create", "update", "patch", "delete", "deletecollection")
RENEW_SECONDS = float(ELECTION["LBIPAM_RENEW_DEADLINE"])
# What the operator gives a write (ha/deadlines.py): the Lease duration minus the renew deadline.
WRITE_SECONDS = float(ELECTION["LBIPAM_LEASE_DURATION"]) - RENEW_SECONDS
# Between the operator's clock and the API server's stamp: a loaded machine's scheduling.
SLACK_SECONDS = 0.5
TIMINGS = Path(__file__).resolve().parents[2] / "build" / "faults-hangs.json"


def _policy() -> dict[str, Any]:
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived", "ResponseStarted"],
        "rules": [
            {"level": "Metadata", "users": list(USERS), "verbs": list(WRITES)},
            {"level": "None"},
        ],
    }


@dataclass(frozen=True)
class Write:
    """One audited write of a replica."""

    user: str
    verb: str
    what: str  # resource[/subresource] namespace/name
    lease: bool
    code: int
    received: datetime.datetime  # requestReceivedTimestamp
    at: datetime.datetime  # stageTimestamp: stored by then; local time like the operator's log

    @property
    def landed(self) -> bool:
        return 200 <= self.code < 300


def _local(stamp: str) -> datetime.datetime:
    return (
        datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        .astimezone()
        .replace(tzinfo=None)
    )


def _write(event: dict[str, Any]) -> Write:
    ref = event.get("objectRef") or {}
    resource = ref.get("resource", "") + (
        f"/{ref['subresource']}" if ref.get("subresource") else ""
    )
    return Write(
        user=event["user"]["username"],
        verb=event["verb"],
        what=f"{resource} {ref.get('namespace', '')}/{ref.get('name', '')}",
        lease=ref.get("resource") == "leases" and ref.get("name") == LEASE,
        code=int((event.get("responseStatus") or {}).get("code") or 0),
        received=_local(event["requestReceivedTimestamp"]),
        at=_local(event["stageTimestamp"]),
    )


class AuditedApiServer:
    """The session's kube-apiserver, restarted with a token per replica and an audit log."""

    def __init__(self, plane: ControlPlane, folder: Path) -> None:
        self.plane = plane
        self.folder = folder
        self.log = folder / "audit.log"
        policy, tokens = folder / "audit-policy.yaml", folder / "tokens.csv"
        policy.write_text(yaml.safe_dump(_policy()))
        tokens.write_text("".join(f'token-{u},{u},{u},"system:masters"\n' for u in USERS))
        self.original = list(plane.apiserver.argv)
        plane.apiserver.argv = [
            *self.original,
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.log}",
            "--audit-log-mode=blocking",
            f"--token-auth-file={tokens}",
        ]
        plane.restart_apiserver()

    def kubeconfig(self, index: int) -> Path:
        """Replica `index`'s credentials: its own token."""
        config = yaml.safe_load(self.plane.kubeconfig.read_text())
        config["users"] = [{"name": "admin", "user": {"token": f"token-{USERS[index]}"}}]
        path = self.folder / f"replica-{index}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def writes(self) -> list[Write]:
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            event = json.loads(line)
            if event.get("stage") == "ResponseComplete":
                found.append(_write(event))
        return sorted(found, key=lambda w: w.at)

    def close(self) -> None:
        self.plane.apiserver.argv = self.original
        self.plane.restart_apiserver()


def trespasses(
    writes: list[Write], since: datetime.datetime, backlog_until: datetime.datetime | None = None
) -> tuple[list[str], int]:
    """Writes stored since `since` that their author had no right to.

    (a) A replica's term ends a renew deadline after it sent its last renewal (stored before
    the audit saw it), and a write it checked just in time is given up a write deadline later.
    Nothing of it may reach the API server after that, until it renews again. What reached the
    API server in time may still be stored later (a stalled etcd holds it); and a frozen API
    server reads what it was sent only when it resumes, so up to `backlog_until` everything
    counts as sent in time (the operator's own clock fence is what tells those apart).
    (b) Nothing of a replica's may be stored once another replica has written the Lease.

    Returns the trespasses, and how many writes were stored after their author's term although
    it sent them in time (the stalled server's backlog).
    """
    found = []
    stale = 0
    holder = ""
    renewed: dict[str, datetime.datetime] = {}
    window = datetime.timedelta(seconds=RENEW_SECONDS + WRITE_SECONDS + SLACK_SECONDS)
    took_over = datetime.datetime.min
    for write in writes:
        if not write.landed:
            continue
        if write.lease:
            if write.user != holder:
                took_over = write.at
            holder = write.user
            renewed[write.user] = write.at
            continue
        if write.at < since:
            continue
        said = f"{write.at:%T.%f} {write.user} {write.verb} {write.what} (received "
        said += f"{write.received:%T.%f})"
        if write.user != holder and write.at > took_over:
            found.append(f"(b) {said}: {holder} took over at {took_over:%T.%f}")
            continue
        if write.user not in renewed:
            continue
        term_end = renewed[write.user] + window
        backlog = backlog_until is not None and write.received <= backlog_until
        if write.received > term_end and not backlog:
            found.append(f"(a) {said}: last renewal {renewed[write.user]:%T.%f}")
        elif write.at > term_end:
            stale += 1
    return found, stale


@dataclass
class Timings:
    """Seconds from the fault's start until each thing happened (None: it did not)."""

    case: str
    fault_seconds: float
    stopped: float | None = None  # the leader's term ended ("lost leadership")
    led: float | None = None  # a replica became leader again
    new_leader: str = ""  # "other" or "same"
    converged: float | None = None  # every Service in the promise again
    writes_after_fault: int = 0
    stored_after_term: int = 0  # sent in time, stored after the term: the stalled backlog
    trespasses: list[str] = field(default_factory=list)

    def line(self) -> str:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f}s"

        return (
            f"stopped writing {seconds(self.stopped)}, led again {seconds(self.led)} "
            f"({self.new_leader or 'nobody'}), converged {seconds(self.converged)}; "
            f"{self.stored_after_term} stored after the term"
        )

    def save(self) -> None:
        """Appended to build/faults-hangs.json: the numbers outlive the terminal."""
        TIMINGS.parent.mkdir(exist_ok=True)
        known = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else []
        known = [entry for entry in known if entry.get("case") != self.case] + [asdict(self)]
        TIMINGS.write_text(json.dumps(known, indent=1))


class Fault:
    """One fault's clock: when it began, and what the replicas' logs say happened since."""

    renew_deadline = RENEW_SECONDS

    def __init__(self, case: str, seconds: float, replicas: Replicas, before: Snapshot) -> None:
        self.replicas = replicas
        self.before = before  # what the Services held when the fault began
        self.leader = replicas.leader()
        self.timings = Timings(case, seconds)
        self.began = datetime.datetime.now()
        self.started = time.monotonic()

    def _after(self, replica: OperatorProcess, text: str) -> float | None:
        found = [m for m in moments(replica, f"{identity(replica)} {text}") if m >= self.began]
        return (min(found) - self.began).total_seconds() if found else None

    def converged(self) -> None:
        """Every Service is in the promise now (before the fault ended, for a partition)."""
        self.timings.converged = time.monotonic() - self.started

    def measure(
        self, audit: AuditedApiServer, backlog_until: datetime.datetime | None = None
    ) -> Timings:
        """Fill in the timings, once every Service converged (`trespasses` for the backlog)."""
        timings = self.timings
        timings.converged = timings.converged or time.monotonic() - self.started
        timings.stopped = self._after(self.leader, "lost leadership")
        led = {r: self._after(r, "became leader") for r in self.replicas.all}
        first = min((r for r in led if led[r] is not None), key=lambda r: led[r] or 0, default=None)
        if first is not None:
            timings.led = led[first]
            timings.new_leader = "same" if first is self.leader else "other"
        writes = audit.writes()
        timings.writes_after_fault = sum(1 for w in writes if w.at >= self.began and not w.lease)
        timings.trespasses, timings.stored_after_term = trespasses(
            writes, self.began, backlog_until
        )
        timings.save()
        return timings


def freeze(process: Process, seconds: float) -> None:
    """SIGSTOP a control-plane process for `seconds`, then SIGCONT (also on the way out)."""
    assert process.popen is not None
    process.popen.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        process.popen.send_signal(signal.SIGCONT)
