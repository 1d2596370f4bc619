"""Running `kubectl lbipam` as a user does: kubectl finds the plugin on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.controlplane import ControlPlane

BIN = Path(sys.executable).parent


def kubectl_lbipam(
    plane: ControlPlane, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`kubectl lbipam ARGS` against the test cluster, as after `pip install lbipam`."""
    env = dict(plane.env(), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    command = [str(plane.kubectl), "lbipam", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
