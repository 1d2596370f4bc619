"""buildah, podman and mmdebstrap from Debian, on container storage of the kit's own.

The storage lives outside the checkout (like the control-plane binaries), so fresh clones
reuse the base and the build's layer cache, and nothing touches the machine's own images.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

# Command → Debian package. runc, not crun: crun 1.8 refuses hosts whose cgroups are mixed
# v1 and v2 ("hybrid"), which this kit must run on.
TOOLS = {"buildah": "buildah", "podman": "podman", "runc": "runc", "mmdebstrap": "mmdebstrap"}


def cache_root() -> Path:
    explicit = os.environ.get("LBIPAM_IMAGE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbipam" / "image"


def ensure_tools() -> None:
    """Install the missing tools from Debian (as root), or say how to."""
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"the image tests need root and these Debian packages: {missing}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    apt = ["apt-get", "-qq", "-o", "DPkg::Lock::Timeout=600"]
    subprocess.run([*apt, "update"], check=True, env=env)
    install = [*apt, "install", "-y", "--no-install-recommends", *missing]
    subprocess.run(install, check=True, env=env, stdout=subprocess.DEVNULL)


def _storage() -> list[str]:
    # vfs copies layers instead of overlaying them: slower, but works on any file system and
    # inside containers, where CI machines often are.
    run_root = Path(tempfile.gettempdir()) / f"lbipam-image-run-{os.geteuid()}"
    return [
        f"--root={cache_root() / 'storage'}",
        f"--runroot={run_root}",
        "--storage-driver=vfs",
    ]


def buildah_argv(*args: str) -> list[str]:
    return ["buildah", *_storage(), *args]


def podman_argv(*args: str) -> list[str]:
    return [
        "podman",
        *_storage(),
        "--cgroup-manager=cgroupfs",
        "--runtime=runc",
        "--events-backend=file",
        *args,
    ]


def run(argv: list[str], timeout: float = 120) -> str:
    """Run a buildah or podman command; its stdout, or an error carrying its stderr."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stderr[-4000:]}")
    return result.stdout


# Podman runs the container's runtime with RLIMIT_NPROC at 32768 (seen in conmon's limits
# here), so a container cannot be given more without CAP_SYS_RESOURCE.
PODMAN_NPROC = 32768


def host_ulimits() -> list[str]:
    """Open-file and process limits for `podman create` that need no CAP_SYS_RESOURCE.

    Podman otherwise asks for 1048576 open files, beyond the hard limit, which needs
    CAP_SYS_RESOURCE; root on a sandboxed CI machine may not have it. These are the caller's
    own limits, as a kubelet's containers inherit their runtime's.
    """
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc = [
        PODMAN_NPROC if n < 0 else min(n, PODMAN_NPROC)
        for n in resource.getrlimit(resource.RLIMIT_NPROC)
    ]
    return [f"--ulimit=nofile={nofile[0]}:{nofile[1]}", f"--ulimit=nproc={nproc[0]}:{nproc[1]}"]
