"""A kubeconfig whose user is an exec credential plugin, as on EKS, GKE, AKS or with OIDC."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from pathlib import Path

from kubernetes import client

from lbipam.kube.client import Api
from lbipam.kube.credentials import from_kubeconfig
from tests.controlplane import ControlPlane
from tests.kit import SYSTEM, Pools, create, service_manifest, subnet, wait_address
from tests.kubeconfigs import write_kubeconfig
from tests.operator_process import OperatorProcess

PLUGIN = Path(__file__).with_name("token_plugin.py")
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def exec_kubeconfig(
    plane: ControlPlane,
    folder: Path,
    mode: str,
    namespace: str,
    account: str = "viewer",
    valid_s: int = 3,
) -> Path:
    """A kubeconfig running token_plugin.py, its tokens for `account` valid `valid_s` seconds."""
    env = {
        "PLUGIN_ADMIN_CERT": str(plane.pki.admin_cert),
        "PLUGIN_ADMIN_KEY": str(plane.pki.admin_key),
        "PLUGIN_NAMESPACE": namespace,
        "PLUGIN_ACCOUNT": account,
        "PLUGIN_RUNS": str(folder / "runs"),
        "PLUGIN_VALID_S": str(valid_s),
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


def test_lbipam_run_logs_in_with_an_exec_plugin_and_again_when_it_expires(
    control_plane: ControlPlane,
    core: client.CoreV1Api,
    pools: Pools,
    namespace: str,
    without_session_operator: None,
    tmp_path: Path,
) -> None:
    """The operator as its own ServiceAccount, its token issued by a plugin: both its client
    and Kopf's watches use it, and ask for a new one at each expiry."""
    config = exec_kubeconfig(control_plane, tmp_path, "token", SYSTEM, account="lbipam", valid_s=5)
    process = OperatorProcess(control_plane, KUBECONFIG=str(config), LBIPAM_NAMESPACE=SYSTEM)
    process.start()
    try:
        net = subnet()
        pools.create([f"{net}.0/30"])
        create(core, namespace, service_manifest("before"))
        assert wait_address(core, namespace, "before") == [f"{net}.0"]
        # One run for the operator's client, one for Kopf's login: Kopf without the token
        # would watch nothing, and `before` would wait.
        assert runs(tmp_path) >= 2
        started = runs(tmp_path)
        time.sleep(6)  # the token expires: the next write needs a new one

        create(core, namespace, service_manifest("after"))

        assert wait_address(core, namespace, "after") == [f"{net}.1"]
        assert runs(tmp_path) > started
        assert "401" not in process.logs(10**6)
    finally:
        process.cleanup()
