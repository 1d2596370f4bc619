"""One replica of the image in a container, run with the pod spec of deploy/deployment.yaml.

What the Deployment asks for is read from the manifest and given to podman: the user, the
read-only root file system, the dropped capabilities, no privilege escalation, the default
seccomp profile, the /tmp emptyDir, the memory limit and the environment. The credentials
are those a kubelet mounts: a ServiceAccount token and the cluster's CA in the usual folder,
with KUBERNETES_SERVICE_HOST/PORT set, so the operator takes its in-cluster configuration.

One difference: the containers share the host's network namespace, because the test
control plane listens on loopback. Each gets its own metrics and health ports for that
reason, and reaches the API server at 127.0.0.1 instead of a Service address.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.controlplane import ControlPlane
from tests.controlplane.cluster import free_port
from tests.image.build import REPO
from tests.image.engine import host_ulimits, podman_argv, run
from tests.operator_process import Replica

DEPLOYMENT = REPO / "deploy" / "deployment.yaml"
ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Containers carry the PID of the test process that made them: a session sweeps only those
# whose maker is gone, never another session's running on the same machine.
OWNER = "lbipam.io/test-owner"


def deployment() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(DEPLOYMENT.read_text(encoding="utf-8"))
    return manifest


def _memory(quantity: str) -> str:
    for suffix, unit in (("Mi", "m"), ("Gi", "g")):
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    raise ValueError(f"memory limit {quantity!r}: only Mi and Gi are understood here")


def pod_flags() -> list[str]:
    """`podman create` flags for what the Deployment's pod spec demands."""
    pod = deployment()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] and context["seccompProfile"]["type"] == "RuntimeDefault"
    # podman applies its default seccomp profile unless told otherwise: RuntimeDefault.
    flags = [f"--user={context['runAsUser']}:{context['runAsGroup']}"]
    flags += [f"--group-add={pod['securityContext']['fsGroup']}"]
    if context["readOnlyRootFilesystem"]:
        # Only the pod's volumes are writable; podman would add tmpfs on /run and /var/tmp.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    flags += [f"--cap-drop={cap}" for cap in context["capabilities"]["drop"]]
    if not context["allowPrivilegeEscalation"]:
        flags.append("--security-opt=no-new-privileges")
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = container["volumeMounts"]
    flags += [f"--tmpfs={m['mountPath']}" for m in mounts if m["name"] in empty_dirs]
    flags.append(f"--memory={_memory(container['resources']['limits']['memory'])}")
    return flags


def pod_env() -> dict[str, str]:
    """The container's environment as the Deployment sets it."""
    manifest = deployment()
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
            env[entry["name"]] = manifest["metadata"]["namespace"]
    return env


def write_credentials(folder: Path, token: str, ca: bytes, namespace: str) -> Path:
    """The ServiceAccount volume a kubelet projects: readable by the pod's fsGroup only."""
    group = deployment()["spec"]["template"]["spec"]["securityContext"]["fsGroup"]
    folder.mkdir(mode=0o750)
    os.chown(folder, 0, group)
    files = {"token": token.encode(), "ca.crt": ca, "namespace": namespace.encode()}
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        os.chown(path, 0, group)
        path.chmod(0o640)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sweep() -> None:
    """Remove containers of sessions that were killed before they could clean up."""
    template = f'{{{{.ID}}}} {{{{index .Labels "{OWNER}"}}}}'
    listed = run(podman_argv("ps", "--all", f"--filter=label={OWNER}", f"--format={template}"))
    stale = [line.split()[0] for line in listed.splitlines() if not _alive(int(line.split()[1]))]
    if stale:
        run(podman_argv("rm", "--force", *stale))


class Container(Replica):
    """One replica of the image, started with `podman start --attach` so its exit is seen."""

    def __init__(self, image: str, plane: ControlPlane, credentials: Path, **settings: str):
        self.image = image
        self.name = f"lbipam-{uuid.uuid4().hex[:8]}"  # also its host name, as a pod's
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = pod_env()
        self.env.update(
            KUBERNETES_SERVICE_HOST="127.0.0.1",
            KUBERNETES_SERVICE_PORT=str(plane.api_port),
            LBIPAM_METRICS_PORT=str(self.metrics_port),
            LBIPAM_HEALTH_PORT=str(self.health_port),
        )
        self.env.update(settings)
        self.credentials = credentials
        self.log_path = Path(tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")[1])
        self.popen: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.ready_after = 0.0  # seconds from `podman start` to /readyz answering 200
        self._pid = 0

    @property
    def identity(self) -> str:
        """The Lease holder name it uses: host name and PID, which is 1 in a container."""
        return f"{self.name}-1"

    def create(self) -> Container:
        """Everything but starting it; with vfs storage this copies the whole image."""
        run(
            podman_argv(
                "create",
                f"--name={self.name}",
                f"--hostname={self.name}",
                f"--label={OWNER}={os.getpid()}",
                "--network=host",
                *pod_flags(),
                *host_ulimits(),
                f"--volume={self.credentials}:{ACCOUNT_DIR}:ro",
                *(f"--env={k}={v}" for k, v in self.env.items()),
                self.image,
            ),
            timeout=300,
        )
        return self

    def start(self, wait: bool = True) -> Container:
        with open(self.log_path, "ab") as log:
            self.started = time.monotonic()
            self.popen = subprocess.Popen(
                podman_argv("start", "--attach", self.name),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        super().wait_ready(timeout)
        self.ready_after = time.monotonic() - self.started

    def pid(self) -> int:
        """The operator's process ID on the host: what a kubelet's runtime signals."""
        return int(run(podman_argv("inspect", "--format={{.State.Pid}}", self.name)))

    def signal(self, sig: int) -> float:
        """Send `sig` to the operator; returns when it went out (monotonic)."""
        pid = self.pid()
        sent = time.monotonic()
        os.kill(pid, sig)
        self._pid = pid
        return sent

    def wait_gone(self, timeout: float = 60) -> float:
        """Wait until the signalled process has exited; returns when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(self._pid, 0)
            except ProcessLookupError:
                return time.monotonic()
            time.sleep(0.005)
        raise TimeoutError(f"{self.name} still runs {timeout}s after the signal:\n{self.logs()}")

    def exit_code(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout)

    def logs(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def remove(self) -> None:
        run(podman_argv("rm", "--force", "--ignore", self.name))
        if self.popen is not None:
            self.popen.wait(30)
        if os.environ.get("LBIPAM_KEEP_LOGS") is None:
            self.log_path.unlink(missing_ok=True)
