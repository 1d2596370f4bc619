"""Run etcd, kube-apiserver and kube-controller-manager on loopback, and stop them cleanly."""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import yaml

from .build import ensure_binaries
from .certs import Pki, make_pki

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

SERVICE_CIDRS = "10.96.0.0/16,fd00:10:96::/112"
KUBERNETES_SERVICE_IP = "10.96.0.1"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    # A killed test run must not leave etcd or the API server behind.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Process:
    """One control-plane component, logging to a file in the run folder."""

    def __init__(
        self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] | None = None
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.popen = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class ControlPlane:
    """A real, node-less Kubernetes control plane in a temporary folder."""

    def __init__(self, root: Path | None = None) -> None:
        self.bin_dir = ensure_binaries()
        self.root = root or Path(tempfile.mkdtemp(prefix="lbipam-cp-"))
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.api_port = free_port()
        self.pki: Pki = make_pki(self.root / "pki", KUBERNETES_SERVICE_IP)
        self.kubeconfig = self.root / "kubeconfig"
        self._write_kubeconfig()
        self.etcd = Process("etcd", self._etcd_argv(), self.root)
        self.apiserver = Process("kube-apiserver", self._apiserver_argv(), self.root)
        self.controller_manager = Process(
            "kube-controller-manager", self._controller_manager_argv(), self.root
        )

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    def _etcd_argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            str(self.bin_dir / "etcd"),
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # Test data is disposable; fsync would only slow every write.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_argv(self) -> list[str]:
        pki = self.pki
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.api_port}",
            f"--cert-dir={self.root / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_public}",
            f"--service-account-signing-key-file={pki.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDRS}",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=0",
        ]

    def _controller_manager_argv(self) -> list[str]:
        return [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            # EndpointSlices feed the data-plane tests' kube-proxy. No node-lifecycle or
            # taint-eviction controller: the kit's nodes have no kubelet to keep them alive.
            "--controllers=garbagecollector,namespace,serviceaccount,endpointslice",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-gc-syncs=20",
            "--v=0",
        ]

    def _write_kubeconfig(self) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "lbipam-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64(self.pki.admin_cert),
                        "client-key-data": b64(self.pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "lbipam-test", "context": {"cluster": "lbipam-test", "user": "admin"}}
            ],
            "current-context": "lbipam-test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        """A raw admin GET against the API server (used for health checks)."""
        request = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._ssl_context()) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Until a CRD just applied is served. Not `kubectl wait`: it fails at once, instead of
        waiting, while the new CRD's status has no conditions yet (kubernetes/kubernetes#66439)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.get(f"{CRDS}/{crd}")
            shown = (json.loads(body).get("status") or {}) if status == 200 else {}
            if any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in shown.get("conditions") or []
            ):
                return
            time.sleep(0.2)
        raise TimeoutError(f"CRD {crd} not Established after {timeout}s")

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            for process in (self.etcd, self.apiserver):
                if not process.running():
                    raise RuntimeError(f"{process.name} exited:\n{process.tail()}")
            try:
                status, _ = self.get("/readyz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"kube-apiserver not ready in time:\n{self.apiserver.tail()}")

    def start(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        self.etcd.start()
        self.apiserver.start()
        self._wait_ready(deadline)
        self.controller_manager.start()

    def restart_apiserver(self, timeout: float = 120) -> None:
        """Stop and start kube-apiserver alone; etcd keeps the data."""
        self.apiserver.stop()
        self.apiserver.start()
        self._wait_ready(time.monotonic() + timeout)

    def stop(self) -> None:
        for process in (self.controller_manager, self.apiserver, self.etcd):
            process.stop()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """Environment for a child process that should talk to this cluster."""
        return dict(os.environ, KUBECONFIG=str(self.kubeconfig))


@contextmanager
def running_control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane()
    try:
        plane.start()
        yield plane
    finally:
        plane.cleanup()
