"""Build the operator's image from the checkout's Dockerfile with buildah, as CI does."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.image.base import ensure_base, exists
from tests.image.engine import buildah_argv, cache_root, podman_argv, run

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/lbipam:test"
# The build's inputs besides the base: the Dockerfile and what its COPY lines take (the
# Dockerfile's unit test pins that list).
INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator")
CONTEXT_LABEL = "lbipam.io/test-context"


@dataclass(frozen=True)
class Image:
    name: str
    base: str
    seconds: float  # the build alone, the base already made; 0 when an equal one was reused
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


def context_digest(base: str) -> str:
    """A hash of everything the image is made from."""
    digest = hashlib.sha256(base.encode())
    for name in INPUTS:
        top = REPO / name
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _label(name: str) -> str:
    template = f'{{{{index .Labels "{CONTEXT_LABEL}"}}}}'
    return run(podman_argv("image", "inspect", f"--format={template}", name)).strip()


def build_image(*, reuse: bool = True, use_layers: bool = True) -> Image:
    """`buildah bud` of the checkout, FROM the Debian base; returns what it made.

    With `reuse`, an image built from the same inputs is taken as it is: vfs makes even a
    build whose every layer is cached take minutes (it copies each layer whole). Without
    `use_layers`, nothing of earlier builds is used.
    """
    base = ensure_base()
    context = context_digest(base)
    if reuse and exists(IMAGE) and _label(IMAGE) == context:
        return Image(IMAGE, base, 0.0, image_size(IMAGE), image_size(base))
    argv = ["bud", "--isolation=chroot", "--layers", f"--build-arg=BASE={base}", f"--tag={IMAGE}"]
    argv.append(f"--label={CONTEXT_LABEL}={context}")
    if not use_layers:
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
