"""The operator's connection to the API server: one aiohttp session, plain JSON in and out.

No generated client: building its API classes (a pydantic validator per method) took 29 MiB
and 3 s at start-up, and having it installed made Kopf import another 19 MiB of it; every
call then paid for argument validation the operator does not need.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from lbipam.ha.deadlines import RequestDeadlines
from lbipam.kube.credentials import Credentials, credentials
from lbipam.kube.errors import ApiError
from lbipam.kube.exec_plugin import ExecPlugin, Issued

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
# A list of the objects' metadata alone (PartialObjectMetadataList): no spec or status to parse.
METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
# Requests in flight: status writes and Events share them (Kopf runs one worker per object
# without limit, so this is what bounds the load the operator puts on the API server). It also
# bounds memory: a pooled TLS connection keeps ~380 KiB (asyncio's 256 KiB read buffer and
# more once it has carried list pages), and aiohttp reuses the oldest idle connection first,
# so under steady churn a pool grown in a burst never idles out: with 100, soak leaders kept
# 28 to 87 connections for good. 16 still keep a burst's writes queued at the API server
# (bench/README.md, "The connection pool").
CONNECTIONS = 16
TOKEN_REREAD_S = 60.0  # projected service-account tokens are rotated in place


@dataclass(frozen=True)
class Proof:
    """What the next request shows the API server: headers, and the TLS context to use."""

    headers: Mapping[str, str]
    tls: ssl.SSLContext
    issued: Issued | None = None  # the exec plugin's credential, refused on a 401


class Api:
    """Requests to the API server; an error status raises `ApiError`."""

    def __init__(self, creds: Credentials, connections: int = CONNECTIONS) -> None:
        self.creds = creds
        # Every request has a deadline that fits the Lease (see ha/deadlines.py); the leader
        # election sets it from the settings.
        self.deadlines = RequestDeadlines()
        # trust_env off: aiohttp would read the proxy variables and ~/.netrc in a thread on
        # every request; the API server is reached directly (or by the kubeconfig's proxy-url).
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=connections, ssl=creds.tls, socket_factory=self.deadlines.socket
            ),
            json_serialize=json.dumps,
        )
        self.plugin = ExecPlugin(creds.exec) if creds.exec is not None else None
        self._token = creds.token
        self._token_read = 0.0
        self._issued_tls: tuple[Issued, ssl.SSLContext] | None = None

    async def proof(self) -> Proof:
        """The exec plugin's current credential (run again when expired), else the token."""
        if self.plugin is None:
            return Proof(_bearer(self._static_token()), self.creds.tls)
        issued = await self.plugin.credential()
        if issued.cert is None:
            return Proof(_bearer(issued.token), self.creds.tls, issued)
        if self._issued_tls is None or self._issued_tls[0] is not issued:
            self._issued_tls = (issued, self.creds.trust.context(issued.cert))
        return Proof(_bearer(issued.token), self._issued_tls[1], issued)

    def _static_token(self) -> str | None:
        file = self.creds.token_file
        if file is not None and time.monotonic() - self._token_read > TOKEN_REREAD_S:
            self._token = file.read_text().strip()
            self._token_read = time.monotonic()
        return self._token

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = JSON,
        accept: str = JSON,
    ) -> Any:
        """The decoded JSON answer (None when empty)."""
        # orjson: a tenth of json's time; UTF-8, as the API server takes.
        data = None if body is None else orjson.dumps(body)
        types = (content_type, accept)
        proof = await self.proof()
        status, reason, raw = await self._send(method, path, data, params, types, proof)
        if status == 401 and self.plugin is not None and proof.issued is not None:
            # Revoked before its expirationTimestamp: as kubectl does, run the plugin again, once.
            self.plugin.refused(proof.issued)
            proof = await self.proof()
            status, reason, raw = await self._send(method, path, data, params, types, proof)
        if status >= 400:
            raise ApiError(status, reason, raw.decode(errors="replace"))
        return orjson.loads(raw) if raw else None

    async def _send(
        self,
        method: str,
        path: str,
        data: bytes | None,
        params: Mapping[str, str] | None,
        types: tuple[str, str],
        proof: Proof,
    ) -> tuple[int, str, bytes]:
        content_type, accept = types
        headers = {"Accept": accept, **proof.headers}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session.request(
            method,
            self.creds.server + path,
            data=data,
            params=params,
            headers=headers,
            proxy=self.creds.proxy,
            ssl=proof.tls,
            server_hostname=self.creds.server_name,
            timeout=self.deadlines.timeout(method),
        ) as response:
            return response.status, response.reason or "", await response.read()

    async def close(self) -> None:
        await self.session.close()


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def connect() -> Api:
    return Api(credentials())
