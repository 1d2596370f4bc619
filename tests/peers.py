"""The peers a user switches from, built from their Go modules and run against the test control
plane: MetalLB's controller and Cilium's operator (issue 25, part 5; the bench runs them too)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.controlplane.build import ensure, key_of, run_go
from tests.controlplane.cluster import die_with_parent, free_port
from tests.kit import Kubectl

METALLB_MODULE, METALLB_VERSION = "go.universe.tf/metallb", "v0.15.3"
METALLB_CONTROLLER = f"{METALLB_MODULE}/controller@{METALLB_VERSION}"
METALLB_NAMESPACE = "metallb-system"
# Cilium v1.15.19 is the newest release whose dependencies the module proxy serves here. Its
# operator is a package of the whole cilium module, so a wrapper module pins its dependencies.
CILIUM_MODULE_DIR = Path(__file__).resolve().parent / "gobuild" / "cilium"
CILIUM_PACKAGE = "github.com/cilium/cilium/operator"
CILIUM_TAGS = "ipam_provider_operator"
CILIUM_BINARY = "cilium-operator-generic"
CILIUM_LDFLAGS = "-s -w"
CILIUM_POOL_CRD = "ciliumloadbalancerippools.cilium.io"


def _build_metallb(out_dir: Path) -> None:
    # `go install module@version` builds with MetalLB's own go.mod, outside ours.
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(out_dir))
    command = ["go", "install", "-v", "-trimpath", "-ldflags=-s -w", METALLB_CONTROLLER]
    run_go(command, out_dir, env)


def metallb_controller() -> Path:
    """MetalLB's controller binary, built once per version into the control plane's cache."""
    key = "metallb-" + key_of(METALLB_CONTROLLER.encode())
    return ensure(key, ("controller",), _build_metallb, "MetalLB's controller") / "controller"


def _build_cilium(out_dir: Path) -> None:
    env = dict(os.environ, CGO_ENABLED="0")
    flags = ["-v", "-trimpath", "-tags", CILIUM_TAGS, f"-ldflags={CILIUM_LDFLAGS}"]
    command = ["go", "build", *flags, "-o", str(out_dir / CILIUM_BINARY), CILIUM_PACKAGE]
    run_go(command, CILIUM_MODULE_DIR, env)


def cilium_operator() -> Path:
    """Cilium's generic operator binary, built once per version into the control plane's cache."""
    module = [(CILIUM_MODULE_DIR / name).read_bytes() for name in ("go.mod", "go.sum")]
    flags = (CILIUM_PACKAGE, CILIUM_TAGS, CILIUM_LDFLAGS)
    key = "cilium-" + key_of(*module, *(flag.encode() for flag in flags))
    what = "Cilium's operator v1.15.19"
    return ensure(key, (CILIUM_BINARY,), _build_cilium, what) / CILIUM_BINARY


def metallb_crds() -> Path:
    """The folder of MetalLB's CRDs, as its release ships them (from the module's source)."""
    done = subprocess.run(
        ["go", "mod", "download", "-json", f"{METALLB_MODULE}@{METALLB_VERSION}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return Path(json.loads(done.stdout)["Dir"]) / "config/crd/bases"


def install_metallb_crds(kubectl: Kubectl, plane: ControlPlane) -> None:
    """MetalLB's CRDs and namespace, left in place for the session (they are inert)."""
    kubectl("apply", "--server-side", "-f", str(metallb_crds()))
    plane.wait_established("ipaddresspools.metallb.io")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": METALLB_NAMESPACE}}
    kubectl("apply", "-f", "-", input=json.dumps(namespace))


class PeerController:
    """A peer's controller as a process, logging to a temporary file (LBIPAM_KEEP_LOGS: kept)."""

    def __init__(self, name: str, plane: ControlPlane) -> None:
        self.plane = plane
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.popen: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> PeerController:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv(),
                env=self.plane.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        return self

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cleanup(self) -> None:
        self.stop()
        if os.environ.get("LBIPAM_KEEP_LOGS") is None:
            self.log_path.unlink(missing_ok=True)


class MetalLBController(PeerController):
    """MetalLB's controller: allocation only (no webhook, no speaker)."""

    def __init__(self, plane: ControlPlane) -> None:
        super().__init__("metallb-controller", plane)
        self.binary = metallb_controller()

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            f"--namespace={METALLB_NAMESPACE}",
            "--webhook-mode=disabled",
            "--disable-cert-rotation",
            f"--port={free_port()}",
        ]


def cilium_argv(plane: ControlPlane, *tuning: str) -> list[str]:
    """Cilium's generic operator on `plane`: no agent, no cloud; LB-IPAM wakes with a pool."""
    return [
        str(cilium_operator()),
        f"--k8s-kubeconfig-path={plane.kubeconfig}",
        "--ipam=kubernetes",
        "--identity-allocation-mode=crd",
        "--cluster-name=default",
        f"--operator-api-serve-addr=127.0.0.1:{free_port()}",
        f"--gops-port={free_port()}",
        *tuning,
    ]


class CiliumOperator(PeerController):
    """Cilium's operator, its client untied from the shipped 5 QPS so 200 Services take seconds."""

    INITIALIZED = "LB-IPAM done initializing"  # logged once every Service of the list is handled

    def __init__(self, plane: ControlPlane) -> None:
        super().__init__("cilium-operator", plane)
        cilium_operator()  # built before the story's clock starts

    def argv(self) -> list[str]:
        return cilium_argv(self.plane, "--k8s-client-qps=200", "--k8s-client-burst=400")


def wait_cilium_crd(kubectl: Kubectl, timeout: float = 180) -> None:
    """Until Cilium's operator has registered its pool CRD and the API server serves it. Its
    CRDs stay for the session, inert like MetalLB's."""
    established = '{.status.conditions[?(@.type=="Established")].status}'
    deadline = time.monotonic() + timeout
    while True:
        shown = kubectl("get", "crd", CILIUM_POOL_CRD, "-o", f"jsonpath={established}", check=False)
        if shown.returncode == 0 and shown.stdout == "True":
            return
        assert time.monotonic() < deadline, f"Cilium registered no {CILIUM_POOL_CRD}"
        time.sleep(1)
