"""Exec credential plugins (`users[].user.exec` in a kubeconfig), as kubectl runs them.

The plugin is a command printing an `ExecCredential` (client.authentication.k8s.io/v1): a
bearer token or a client certificate, valid until `expirationTimestamp`. It runs as a child
process on the event loop, once per credential: concurrent requests wait for the same run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")


class ExecError(RuntimeError):
    """The plugin could not be run or printed no usable credential; the message says which."""


@dataclass(frozen=True)
class ExecSpec:
    """The `exec` entry of a kubeconfig user, checked."""

    command: str
    api_version: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    interactive_mode: str = "IfAvailable"
    install_hint: str = ""
    # What KUBERNETES_EXEC_INFO says of the cluster, when provideClusterInfo is true.
    cluster: Mapping[str, Any] | None = None

    @classmethod
    def parse(
        cls, entry: Mapping[str, Any], base: Path, cluster: Mapping[str, Any] | None
    ) -> ExecSpec:
        """From the kubeconfig's `exec` mapping; `base` is the kubeconfig's folder."""
        version = entry.get("apiVersion") or ""
        if version not in API_VERSIONS:
            raise ValueError(
                f"exec.apiVersion {version!r} is not supported; use {API_VERSIONS[0]} "
                "(v1alpha1 was removed in Kubernetes 1.24)"
            )
        command = str(entry.get("command") or "")
        if not command:
            raise ValueError("exec.command is missing: name the credential plugin to run")
        mode = entry.get("interactiveMode") or "IfAvailable"
        if mode not in INTERACTIVE_MODES:
            raise ValueError(f"exec.interactiveMode {mode!r}: use one of {INTERACTIVE_MODES}")
        if os.sep in command and not os.path.isabs(command):
            # As kubectl does: a relative path is relative to the kubeconfig, not to the cwd.
            command = str(base / command)
        return cls(
            command=command,
            api_version=version,
            args=tuple(str(a) for a in entry.get("args") or ()),
            env=tuple((str(e["name"]), str(e["value"])) for e in entry.get("env") or ()),
            interactive_mode=mode,
            install_hint=str(entry.get("installHint") or ""),
            cluster=cluster if entry.get("provideClusterInfo") else None,
        )


@dataclass(frozen=True)
class Issued:
    """One credential the plugin printed."""

    token: str | None
    cert: tuple[bytes, bytes] | None  # PEM certificate and key
    expires: float | None  # wall-clock seconds; None: good until the API server says 401

    def expired(self) -> bool:
        return self.expires is not None and time.time() >= self.expires


def parse_output(raw: bytes, api_version: str) -> Issued:
    """The plugin's stdout as a credential; ExecError says what is wrong with it."""
    try:
        document = json.loads(raw)
    except ValueError:
        raise ExecError("printed no JSON ExecCredential") from None
    if not isinstance(document, dict) or document.get("kind") != "ExecCredential":
        raise ExecError("printed JSON that is not an ExecCredential")
    if document.get("apiVersion") != api_version:
        raise ExecError(
            f"printed apiVersion {document.get('apiVersion')!r}, the kubeconfig asked for "
            f"{api_version!r}"
        )
    status = document.get("status") or {}
    token = status.get("token") or None
    cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
    if bool(cert) != bool(key):
        raise ExecError("printed clientCertificateData without clientKeyData, or the reverse")
    if not token and not cert:
        raise ExecError("printed neither status.token nor status.clientCertificateData")
    stamp = status.get("expirationTimestamp")
    try:
        expires = (
            datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None
        )
    except (AttributeError, ValueError):
        raise ExecError(f"printed expirationTimestamp {stamp!r}, not RFC 3339") from None
    pem = (str(cert).encode(), str(key).encode()) if cert else None
    return Issued(token, pem, expires)


class ExecPlugin:
    """Runs the plugin when there is no credential yet, or the last one expired or was refused."""

    def __init__(self, spec: ExecSpec) -> None:
        self.spec = spec
        self.runs = 0
        self._issued: Issued | None = None
        self._lock = asyncio.Lock()

    async def credential(self) -> Issued:
        async with self._lock:
            if self._issued is None or self._issued.expired():
                self._issued = await self._run()
                self.runs += 1
            return self._issued

    def refused(self, issued: Issued) -> None:
        """The API server answered 401 to `issued`: the next request runs the plugin again."""
        if self._issued is issued:
            self._issued = None

    async def _run(self) -> Issued:
        spec = self.spec
        interactive = spec.interactive_mode != "Never" and sys.stdin.isatty()
        if spec.interactive_mode == "Always" and not interactive:
            raise ExecError(
                f"{spec.command}: exec.interactiveMode is Always, but stdin is no terminal"
            )
        info: dict[str, Any] = {"interactive": interactive}
        if spec.cluster is not None:
            info["cluster"] = spec.cluster
        exec_info = {"apiVersion": spec.api_version, "kind": "ExecCredential", "spec": info}
        env = {**os.environ, **dict(spec.env), "KUBERNETES_EXEC_INFO": json.dumps(exec_info)}
        try:
            process = await asyncio.create_subprocess_exec(
                spec.command,
                *spec.args,
                env=env,
                stdin=None if interactive else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            hint = f"; {spec.install_hint}" if spec.install_hint else ""
            raise ExecError(f"cannot run {spec.command}: {error.strerror}{hint}") from None
        out, _ = await process.communicate()  # stderr stays the user's: plugins prompt there
        if process.returncode != 0:
            raise ExecError(f"{spec.command} exited with {process.returncode}")
        try:
            return parse_output(out, spec.api_version)
        except ExecError as error:
            raise ExecError(f"{spec.command} {error}") from None


def cluster_info(cluster: Mapping[str, Any], ca_data: bytes | None) -> dict[str, Any]:
    """The cluster as KUBERNETES_EXEC_INFO describes it to a plugin (provideClusterInfo)."""
    info: dict[str, Any] = {"server": str(cluster["server"])}
    for field in ("tls-server-name", "insecure-skip-tls-verify", "proxy-url"):
        if cluster.get(field):
            info[field] = cluster[field]
    if ca_data:
        info["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    extension = next(
        (
            e.get("extension")
            for e in cluster.get("extensions") or ()
            if e.get("name") == "client.authentication.k8s.io/exec"
        ),
        None,
    )
    if extension is not None:
        info["config"] = extension
    return info
