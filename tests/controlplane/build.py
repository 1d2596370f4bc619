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
from collections.abc import Callable, Iterable
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


def cache_base() -> Path:
    """~/.cache/lbipam (or under $XDG_CACHE_HOME): built binaries outlive every checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbipam"


def cache_root() -> Path:
    """Where the control plane's binaries live: outside the checkout so fresh clones reuse them."""
    explicit = os.environ.get("LBIPAM_CONTROLPLANE_CACHE")
    return Path(explicit) if explicit else cache_base() / "controlplane"


def go_version() -> str:
    return subprocess.run(["go", "version"], check=True, capture_output=True, text=True).stdout


def cache_key() -> str:
    """Hash of everything that decides the binaries' content."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "etcd/main.go"):
        digest.update((MODULE_DIR / name).read_bytes())
    digest.update(go_version().encode())
    digest.update(LDFLAGS.encode())
    return digest.hexdigest()[:16]


def _log(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


def go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a go command with CGO off, reporting progress every 30 s instead of every line."""
    proc = subprocess.Popen(
        ["go", *args],
        cwd=cwd,
        env=dict(os.environ, CGO_ENABLED="0", **(env or {})),
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
            _log(f"go {args[0]}: {compiled} lines of output, {now - started:.0f}s elapsed")
            last_report = now
    if proc.wait() != 0:
        raise RuntimeError(f"go {args[0]} failed:\n" + "\n".join(tail))
    _log(f"go {args[0]} done in {time.monotonic() - started:.0f}s")


def cached(target: Path, names: Iterable[str], build: Callable[[Path], None]) -> Path:
    """`target` once it holds every one of `names`; `build(folder)` fills it first if needed.

    Builds go to a staging folder renamed into place, under a lock: two runs on one machine
    never build into the same folder at once, and a failed build leaves nothing half-done.
    """
    names = tuple(names)
    if all((target / name).exists() for name in names):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all((target / name).exists() for name in names):
            return target
        staging = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
        try:
            build(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _build_control_plane(out_dir: Path) -> None:
    _log(
        f"building Kubernetes {KUBERNETES_VERSION} and etcd into {out_dir.parent} "
        "(a cold build takes tens of minutes on two cores; later runs reuse it)"
    )
    go(
        ["build", "-v", "-trimpath", f"-ldflags={LDFLAGS}", "-o", str(out_dir), *PACKAGES],
        MODULE_DIR,
    )


def ensure_binaries() -> Path:
    """Return the folder holding the four binaries, building them first when needed."""
    return cached(cache_root() / cache_key(), BINARIES, _build_control_plane)
