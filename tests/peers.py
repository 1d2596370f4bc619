"""The peers a user switches from, built from their Go modules and run against the test control
plane: MetalLB's controller (issue 25, part 5). Cilium's operator is not built yet."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from tests.controlplane import ControlPlane
from tests.controlplane.build import ensure, key_of, run_go
from tests.controlplane.cluster import die_with_parent, free_port
from tests.kit import Kubectl

METALLB_MODULE, METALLB_VERSION = "go.universe.tf/metallb", "v0.15.3"
METALLB_CONTROLLER = f"{METALLB_MODULE}/controller@{METALLB_VERSION}"
METALLB_NAMESPACE = "metallb-system"


def _build_metallb(out_dir: Path) -> None:
    # `go install module@version` builds with MetalLB's own go.mod, outside ours.
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(out_dir))
    command = ["go", "install", "-v", "-trimpath", "-ldflags=-s -w", METALLB_CONTROLLER]
    run_go(command, out_dir, env)


def metallb_controller() -> Path:
    """MetalLB's controller binary, built once per version into the control plane's cache."""
    key = "metallb-" + key_of(METALLB_CONTROLLER.encode())
    return ensure(key, ("controller",), _build_metallb, "MetalLB's controller") / "controller"


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


def install_metallb_crds(kubectl: Kubectl) -> None:
    """MetalLB's CRDs and namespace, left in place for the session (they are inert)."""
    kubectl("apply", "--server-side", "-f", str(metallb_crds()))
    kubectl("wait", "--for=condition=Established", "crd/ipaddresspools.metallb.io")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": METALLB_NAMESPACE}}
    kubectl("apply", "-f", "-", input=json.dumps(namespace))


class MetalLBController:
    """MetalLB's controller as a process: allocation only (no webhook, no speaker)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.binary = metallb_controller()
        self.env = plane.env()
        self.log_path = Path(tempfile.mkstemp(prefix="metallb-controller-", suffix=".log")[1])
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> MetalLBController:
        argv = [
            str(self.binary),
            f"--namespace={METALLB_NAMESPACE}",
            "--webhook-mode=disabled",
            "--disable-cert-rotation",
            f"--port={free_port()}",
        ]
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv,
                env=self.env,
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
