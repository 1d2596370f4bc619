"""How long a request to the API server may take, so that none outlives the Lease it was sent under.

A leader writes only while its term is active, that is until `renew_deadline` after its last
renewal was sent. Another replica takes over no earlier than `lease_duration` after it saw that
renewal. A write checked at the last moment of the term and given up no later than
`lease_duration - renew_deadline` after it was sent is therefore over before anyone else may
lead. "Given up" has to hold on the wire too: a closed socket whose bytes are still unacknowledged
(a partition) keeps retransmitting them and would deliver the write when the network heals, so
sockets reset on close and the kernel gives up unacknowledged bytes after the same time.

Reads cannot land anything; they get a whole Lease duration, after which the term that asked is
over anyway and a hung API server must not keep a worker (or the start-up list) waiting forever.
Kopf's watches have their own, long timeouts (handlers/startup.py) and never write.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import Any

import aiohttp

READS = frozenset({"GET", "HEAD"})
CONNECT_S = 10.0
# The defaults of LBIPAM_LEASE_DURATION and LBIPAM_RENEW_DEADLINE, for an operator that runs
# without leader election (nothing to fence, but a hung request must still end).
DEFAULT_LEASE_S, DEFAULT_RENEW_S = 15.0, 10.0


class RequestDeadlines:
    """The total time each request may take; `fit` sets it from the Lease timing."""

    def __init__(self) -> None:
        self.write = DEFAULT_LEASE_S - DEFAULT_RENEW_S
        self.read = DEFAULT_LEASE_S

    def fit(self, lease_duration: float, renew_deadline: float) -> None:
        self.write = lease_duration - renew_deadline
        self.read = lease_duration

    def timeout(self, method: str) -> aiohttp.ClientTimeout:
        total = self.read if method.upper() in READS else self.write
        return aiohttp.ClientTimeout(total=total, sock_connect=min(CONNECT_S, total))

    def socket(self, addr_info: Sequence[Any]) -> socket.socket:
        """A client socket whose unsent bytes die with it (aiohttp's `socket_factory`)."""
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=kind, proto=proto)
        # Linger 0: close() sends a reset and drops what is still queued, instead of
        # retransmitting it for minutes after the request was given up.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # While the socket lives (a TLS shutdown waits for the peer), bytes nobody acknowledged
        # within a write's deadline are dropped with the connection.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(self.write * 1000))
        return sock
