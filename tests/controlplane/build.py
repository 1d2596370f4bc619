"""Build (or reuse) etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBERNETES_VERSION = "v1.36.3"
MODULE_DIR = Path(__file__).resolve().parent / "gobuild"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
PACKAGES = (
    "./etcd",
    "k8s.io/kubernetes/cmd/kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
    "k8s.io/kubernetes/cmd/kubectl",
)
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


def cache_key() -> str:
    """Hash of everything that decides the binaries' content."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "etcd/main.go"):
        digest.update((MODULE_DIR / name).read_bytes())
    go_version = subprocess.run(
        ["go", "version"], check=True, capture_output=True, text=True
    ).stdout
    digest.update(go_version.encode())
    digest.update(LDFLAGS.encode())
    return digest.hexdigest()[:16]


def _log(message: str) -> None:
    print(f"[controlplane] {message}", file=sys.stderr, flush=True)


def _go_build(out_dir: Path) -> None:
    env = dict(os.environ, CGO_ENABLED="0")
    command = ["go", "build", "-v", "-trimpath", f"-ldflags={LDFLAGS}", "-o", str(out_dir)]
    proc = subprocess.Popen(
        [*command, *PACKAGES],
        cwd=MODULE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
        raise RuntimeError("go build failed:\n" + "\n".join(tail))
    _log(f"built {len(BINARIES)} binaries in {time.monotonic() - started:.0f}s")


def ensure_binaries() -> Path:
    """Return the folder holding the four binaries, building them first when needed."""
    target = cache_root() / cache_key()
    if all((target / name).is_file() for name in BINARIES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        # Two test runs on one machine must not build into the same folder at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((target / name).is_file() for name in BINARIES):
            return target
        _log(
            f"building Kubernetes {KUBERNETES_VERSION} and etcd into {target} "
            "(a cold build takes tens of minutes on two cores; later runs reuse it)"
        )
        staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
        try:
            _go_build(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
