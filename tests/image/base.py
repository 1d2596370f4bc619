"""A base image from Debian's packages, built with mmdebstrap once and kept.

No image registry is reachable from CI; Debian's archive is. The base holds what the
Dockerfile asks of one (python3 with venv, CA certificates) and is named after a hash of
the command that makes it, as the control-plane binaries are.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import tempfile
import time

from tests.image.engine import cache_root, podman_argv, run

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MMDEBSTRAP = ["mmdebstrap", "--variant=apt", f"--include={','.join(PACKAGES)}", SUITE]
# What a Debian image's configuration carries; a bare root file system has none.
CONFIG = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_name() -> str:
    key = hashlib.sha256(" ".join(MMDEBSTRAP).encode()).hexdigest()[:16]
    return f"localhost/lbipam-base:{key}"


def exists(name: str) -> bool:
    result = subprocess.run(podman_argv("image", "exists", name), check=False)
    return result.returncode == 0


def ensure_base() -> str:
    """The base image's name, building it first when the kit's storage lacks it."""
    name = base_name()
    if exists(name):
        return name
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".base.lock", "w") as lock:
        # Two test runs on one machine must not build the same base at once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exists(name):
            return name
        print(f"[image] building {name} with mmdebstrap", file=sys.stderr, flush=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=root) as scratch:
            tarball = f"{scratch}/base.tar"
            run([*MMDEBSTRAP, tarball], timeout=1800)
            run(podman_argv("import", f"--change={CONFIG}", tarball, name), timeout=600)
        seconds = time.monotonic() - started
        print(f"[image] built {name} in {seconds:.0f}s", file=sys.stderr, flush=True)
    return name
