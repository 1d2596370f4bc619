"""The operator's connection to the API server: one aiohttp session, plain JSON in and out.

No generated client: building its API classes (a pydantic validator per method) took 29 MiB
and 3 s at start-up, and having it installed made Kopf import another 19 MiB of it; every
call then paid for argument validation the operator does not need.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from lbipam.kube.errors import ApiError

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
# Requests in flight: status writes and Events share them (Kopf runs one worker per object
# without limit, so this is what bounds the load the operator puts on the API server).
CONNECTIONS = 100
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_S = 60.0  # projected service-account tokens are rotated in place


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to prove who we are."""

    server: str
    tls: ssl.SSLContext
    token: str | None = None
    token_file: Path | None = None  # re-read now and then: the kubelet rotates it
    proxy: str | None = None


def _tls(
    ca_file: str | None, ca_data: bytes | None, cert: tuple[bytes, bytes] | None, insecure: bool
) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=ca_file, cadata=ca_data.decode() if ca_data else None
    )
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        # load_cert_chain reads files only; the key stays on disk for no longer than this.
        with tempfile.TemporaryDirectory() as folder:
            cert_path, key_path = Path(folder, "cert"), Path(folder, "key")
            cert_path.write_bytes(cert[0])
            key_path.touch(mode=0o600)
            key_path.write_bytes(cert[1])
            context.load_cert_chain(cert_path, key_path)
    return context


def _field(entry: Mapping[str, Any], name: str, base: Path) -> bytes | None:
    """`name-data` (base64) or the file `name` (relative to the kubeconfig's folder)."""
    if entry.get(f"{name}-data"):
        return base64.b64decode(str(entry[f"{name}-data"]))
    if entry.get(name):
        return (base / os.path.expanduser(str(entry[name]))).read_bytes()
    return None


def from_kubeconfig(path: Path) -> Credentials:
    """The current context of a kubeconfig: client certificate or token, no exec plugins."""
    config = yaml.safe_load(path.read_text()) or {}

    def named(kind: str, name: str) -> Mapping[str, Any]:
        for item in config.get(kind + "s") or []:
            if item.get("name") == name:
                return item.get(kind) or {}
        raise ValueError(f"{path}: no {kind} named {name!r}")

    context = named("context", config.get("current-context") or "")
    cluster = named("cluster", context["cluster"])
    user = named("user", context["user"])
    if "exec" in user or "auth-provider" in user:
        raise ValueError(f"{path}: exec and auth-provider credentials are not supported")
    base = path.parent
    cert, key = _field(user, "client-certificate", base), _field(user, "client-key", base)
    ca = _field(cluster, "certificate-authority", base)
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    tls = _tls(None, ca, (cert, key) if cert and key else None, insecure)
    server = cluster["server"].rstrip("/")
    return Credentials(server, tls, user.get("token"), proxy=cluster.get("proxy-url"))


def in_cluster(folder: Path = SERVICE_ACCOUNT) -> Credentials:
    """The pod's service account."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    tls = _tls(str(folder / "ca.crt"), None, None, False)
    return Credentials(server, tls, token_file=folder / "token")


def credentials() -> Credentials:
    """$KUBECONFIG when set (or ~/.kube/config), else the in-cluster service account."""
    first = (os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0]
    path = Path(os.path.expanduser(first))
    return from_kubeconfig(path) if path.exists() else in_cluster()


class Api:
    """Requests to the API server; an error status raises `ApiError`."""

    def __init__(self, creds: Credentials, connections: int = CONNECTIONS) -> None:
        self.creds = creds
        # trust_env off: aiohttp would read the proxy variables and ~/.netrc in a thread on
        # every request; the API server is reached directly (or by the kubeconfig's proxy-url).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, ssl=creds.tls),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            json_serialize=json.dumps,
        )
        self._token = creds.token
        self._token_read = 0.0

    def authorization(self) -> dict[str, str]:
        file = self.creds.token_file
        if file is not None and time.monotonic() - self._token_read > TOKEN_REREAD_S:
            self._token = file.read_text().strip()
            self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = JSON,
    ) -> Any:
        """The decoded JSON answer (None when empty)."""
        headers = {"Accept": JSON, **self.authorization()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        async with self.session.request(
            method,
            self.creds.server + path,
            data=data,
            params=params,
            headers=headers,
            proxy=self.creds.proxy,
        ) as response:
            raw = await response.read()
            if response.status >= 400:
                raise ApiError(response.status, response.reason or "", raw.decode(errors="replace"))
            return json.loads(raw) if raw else None

    async def close(self) -> None:
        await self.session.close()


def connect() -> Api:
    return Api(credentials())
