"""A kubeconfig whose user is an exec credential plugin, as on EKS, GKE, AKS or with OIDC."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from pathlib import Path

from kubernetes import client

from lbipam.kube.client import Api, from_kubeconfig
from tests.controlplane import ControlPlane
from tests.kubeconfigs import write_kubeconfig

PLUGIN = Path(__file__).with_name("token_plugin.py")
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def exec_kubeconfig(plane: ControlPlane, folder: Path, mode: str, namespace: str) -> Path:
    env = {
        "PLUGIN_ADMIN_CERT": str(plane.pki.admin_cert),
        "PLUGIN_ADMIN_KEY": str(plane.pki.admin_key),
        "PLUGIN_NAMESPACE": namespace,
        "PLUGIN_ACCOUNT": "viewer",
        "PLUGIN_RUNS": str(folder / "runs"),
        "PLUGIN_VALID_S": "3",
    }
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(PLUGIN), mode],
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "interactiveMode": "Never",
            "provideClusterInfo": True,
        }
    }
    ca = base64.b64encode(plane.pki.ca_cert.read_bytes()).decode()
    cluster = {"server": plane.server, "certificate-authority-data": ca}
    return write_kubeconfig(folder / "kubeconfig", cluster, user)


async def whoami(api: Api) -> str:
    review = await api.request("POST", REVIEW, {"apiVersion": "authentication.k8s.io/v1"})
    return str(review["status"]["userInfo"]["username"])


def runs(folder: Path) -> int:
    return len((folder / "runs").read_text().splitlines())


async def until_expired(api: Api) -> None:
    assert api.plugin is not None
    issued = await api.plugin.credential()
    await asyncio.sleep(max(0.0, (issued.expires or 0) - time.time()) + 0.2)


async def test_a_plugin_token_is_used_renewed_when_it_expires_and_when_it_is_revoked(
    control_plane: ControlPlane, core: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="viewer"))
    core.create_namespaced_service_account(namespace, account)
    api = Api(from_kubeconfig(exec_kubeconfig(control_plane, tmp_path, "token", namespace)))
    me = f"system:serviceaccount:{namespace}:viewer"
    try:
        assert await whoami(api) == me
        assert await whoami(api) == me
        assert runs(tmp_path) == 1, "a token still valid is reused, the plugin not run again"

        await until_expired(api)
        assert await whoami(api) == me
        assert runs(tmp_path) == 2, "at its expirationTimestamp the plugin runs again"

        # The API server stops accepting token 2 (its Secret is gone) long before it expires:
        # its 401 makes the client run the plugin again and repeat the request.
        core.delete_namespaced_secret("session-2", namespace)
        deadline = time.monotonic() + 30  # the API server caches a token's review for 10 s
        while runs(tmp_path) == 2 and time.monotonic() < deadline:
            assert await whoami(api) == me
            await asyncio.sleep(0.5)
        assert runs(tmp_path) == 3
        assert await whoami(api) == me
    finally:
        await api.close()


async def test_a_plugin_client_certificate_is_presented_and_renewed(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    api = Api(from_kubeconfig(exec_kubeconfig(control_plane, tmp_path, "cert", namespace)))
    try:
        assert await whoami(api) == "admin"
        await until_expired(api)
        assert await whoami(api) == "admin"
        assert runs(tmp_path) == 2
    finally:
        await api.close()
