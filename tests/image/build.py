"""Build the operator's image from the checkout's Dockerfile with buildah, as CI does."""

from __future__ import annotations

import fcntl
import json
import os
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.image.base import ensure_base
from tests.image.engine import buildah_argv, cache_root, podman_argv, run

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/lbipam:test"


@dataclass(frozen=True)
class Image:
    name: str
    base: str
    seconds: float  # the build alone, the base already made
    size: int  # bytes, base included
    base_size: int

    @property
    def added(self) -> int:
        return self.size - self.base_size


def ca_bundle() -> Path | None:
    """The CA bundle this machine's own pip trusts, if it names one.

    A machine behind a TLS-inspecting proxy needs it inside the build too; the Dockerfile
    takes it as a secret, so it never becomes part of a layer.
    """
    named = [os.environ.get(v) for v in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    defaults = ssl.get_default_verify_paths()
    for candidate in (*named, defaults.cafile, defaults.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def image_size(name: str) -> int:
    return int(run(podman_argv("image", "inspect", "--format={{.Size}}", name)))


def build_image(*, use_cache: bool = True) -> Image:
    """`buildah bud` of the checkout, FROM the Debian base; returns what it made."""
    base = ensure_base()
    argv = ["bud", "--isolation=chroot", "--layers", f"--build-arg=BASE={base}", f"--tag={IMAGE}"]
    if not use_cache:
        argv.append("--no-cache")
    ca = ca_bundle()
    if ca is not None:
        argv.append(f"--secret=id=pip-cert,src={ca}")
    with open(cache_root() / ".build.lock", "w") as lock:
        # One tag, one build at a time on this machine.
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        run(buildah_argv(*argv, str(REPO)), timeout=1800)
        seconds = time.monotonic() - started
        forget_old_layers()
    return Image(IMAGE, base, seconds, image_size(IMAGE), image_size(base))


def forget_old_layers(days: float = 1) -> None:
    """Remove cached build layers older than `days`: vfs stores every layer whole.

    `podman image prune --filter until=…` removed fresh layers too (podman 4.3), so the
    age is judged here.
    """
    cutoff = time.time() - days * 86400
    listed = json.loads(run(podman_argv("images", "--all", "--format=json")))
    for image in listed:
        if not image.get("Names") and image["Created"] < cutoff:
            # A layer that younger ones still build on is refused: it goes another day.
            subprocess.run(podman_argv("rmi", image["Id"]), capture_output=True, check=False)
