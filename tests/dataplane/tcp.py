"""Small TCP endpoints inside namespaces: a pod's name server, a client's probe, an API relay.

They are threads of the test process whose sockets were opened inside a namespace (a socket stays
in the namespace it was created in), so no helper process has to be started per pod or probe.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tests.dataplane.netns import Netns

K = TypeVar("K")
# What a probe saw: the name of the pod that answered, or how the connection failed.
REFUSED = "refused"  # a reset or an ICMP error came back
SILENT = "silent"  # nothing came back: the packets were dropped
PROBE_TIMEOUT = 1.5


def _listener(netns: Netns, address: str, port: int) -> socket.socket:
    def listen() -> socket.socket:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address, port))
        sock.listen(64)
        return sock

    return netns.inside(listen)


class Server:
    """Accepts on a listening socket and hands each connection to `serve` on a thread."""

    def __init__(self, listener: socket.socket, serve: Callable[[socket.socket], None]) -> None:
        self._listener = listener
        self._serve = serve
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed: the server is stopping
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)


def name_server(netns: Netns, port: int, name: str) -> Server:
    """What a pod runs: every connection (IPv4 or IPv6) gets `name` and is closed."""

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.sendall(name.encode())

    return Server(_listener(netns, "::", port), answer)


def api_relay(netns: Netns, port: int, target: tuple[str, int]) -> Server:
    """127.0.0.1:`port` inside `netns` relays to `target` on the host's loopback."""

    def relay(inside: socket.socket) -> None:
        try:
            outside = socket.create_connection(target)
        except OSError:
            inside.close()  # the API server is down (a fault test): the client sees a reset
            return

        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pump, args=(outside, inside), daemon=True)
        back.start()
        pump(inside, outside)
        back.join()
        inside.close()
        outside.close()

    return Server(_listener(netns, "127.0.0.1", port), relay)


def probe(client: Netns, address: str, port: int, timeout: float = PROBE_TIMEOUT) -> str:
    """Connect from `client` and read the answer: a pod name, REFUSED or SILENT."""

    def connect() -> socket.socket:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        return sock

    with client.inside(connect) as sock:
        try:
            sock.connect((address, port))
            chunks = []
            while data := sock.recv(256):
                chunks.append(data)
            return b"".join(chunks).decode()
        except TimeoutError:
            return SILENT
        except OSError:
            return REFUSED


def probe_all(
    probes: dict[K, tuple[Netns, str, int]], timeout: float = PROBE_TIMEOUT
) -> dict[K, str]:
    """Run several probes at once (a dropped one costs a full timeout); results by key."""
    with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
        futures = {key: pool.submit(probe, *args, timeout) for key, args in probes.items()}
        return {key: future.result() for key, future in futures.items()}
