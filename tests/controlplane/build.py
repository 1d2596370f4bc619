"""Build (or reuse) the control plane (etcd, kube-apiserver, kube-controller-manager, kubectl),
kube-proxy and kube-router from Go modules."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
MODULE_DIR = Path(__file__).resolve().parent / "gobuild"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "kubectl")
PACKAGES = (
    "./etcd",
    "k8s.io/kubernetes/cmd/kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
    "k8s.io/kubernetes/cmd/kube-proxy",
    "k8s.io/kubernetes/cmd/kubectl",
)
# The NetworkPolicy firewall of the data-plane tests. Pinned to v2.1.0 because it is the only
# version the Go module proxy serves here, flaws and all. It is a test-only component: it runs
# inside network namespaces the tests create and is never shipped with lbipam.
KUBE_ROUTER = "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@v2.1.0"
_MAJOR, _MINOR = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
# The same values Kubernetes' own release build stamps in, so /version reports v1.36.3.
_VERSION_FLAGS = " ".join(
    f"-X {pkg}.{name}={value}"
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    for name, value in (
        ("gitVersion", KUBERNETES_VERSION),
        ("gitMajor", _MAJOR),
        ("gitMinor", _MINOR),
        ("gitTreeState", "clean"),
        ("buildDate", "1970-01-01T00:00:00Z"),
    )
)
LDFLAGS = f"-s -w {_VERSION_FLAGS}"


def cache_root() -> Path:
    """Where built binaries live: outside the checkout so fresh clones reuse them."""
    explicit = os.environ.get("LBIPAM_CONTROLPLANE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbipam" / "controlplane"


def key_of(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    go_version = subprocess.run(
        ["go", "version"], check=True, capture_output=True, text=True
    ).stdout
    digest.update(go_version.encode())
    return digest.hexdigest()[:16]


def cache_key() -> str:
    """Hash of everything that decides the control plane binaries' content."""
    sources = (MODULE_DIR / name for name in ("go.mod", "go.sum", "etcd/main.go"))
    return key_of(*(path.read_bytes() for path in sources), LDFLAGS.encode())


def kube_router_key() -> str:
    """kube-router has a cache entry of its own: pinning it never rebuilds the control plane."""
    return "kube-router-" + key_of(KUBE_ROUTER.encode())


def _log(message: str) -> None:
    print(f"[controlplane] {message}", file=sys.stderr, flush=True)


def run_go(command: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    started = last_report = time.monotonic()
    tail: list[str] = []
    for compiled, line in enumerate(proc.stdout, start=1):
        tail = [*tail[-40:], line.rstrip()]
        now = time.monotonic()
        if now - last_report >= 30:
            _log(f"building: {compiled} packages compiled, {now - started:.0f}s elapsed")
            last_report = now
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed:\n" + "\n".join(tail))
    _log(f"{' '.join(command[:2])} finished in {time.monotonic() - started:.0f}s")


def _build_control_plane(out_dir: Path) -> None:
    env = dict(os.environ, CGO_ENABLED="0")
    command = ["go", "build", "-v", "-trimpath", f"-ldflags={LDFLAGS}", "-o", str(out_dir)]
    run_go([*command, *PACKAGES], MODULE_DIR, env)


def _build_kube_router(out_dir: Path) -> None:
    # `go install module@version` builds with kube-router's own go.mod, outside ours.
    env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(out_dir))
    command = ["go", "install", "-v", "-trimpath", "-ldflags=-s -w", KUBE_ROUTER]
    run_go(command, out_dir, env)


def ensure(key: str, names: tuple[str, ...], build: Callable[[Path], None], what: str) -> Path:
    target = cache_root() / key
    if all((target / name).is_file() for name in names):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        # Two test runs on one machine must not build into the same folder at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((target / name).is_file() for name in names):
            return target
        _log(f"building {what} into {target} (tens of minutes on two cores; later runs reuse it)")
        staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
        try:
            build(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def ensure_binaries() -> Path:
    """The folder holding the control plane and kube-proxy, building them first when needed."""
    what = f"Kubernetes {KUBERNETES_VERSION} and etcd"
    return ensure(cache_key(), BINARIES, _build_control_plane, what)


def ensure_kube_router() -> Path:
    """The kube-router binary, building it first when needed."""
    folder = ensure(kube_router_key(), ("kube-router",), _build_kube_router, KUBE_ROUTER)
    return folder / "kube-router"
