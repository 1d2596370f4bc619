"""The async Kubernetes client, set up once per process."""

from __future__ import annotations

import os

from kubernetes.aio import client, config


def _kubeconfig() -> str | None:
    path = (os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep)[0]
    path = os.path.expanduser(path)
    return path if os.path.exists(path) else None


async def connect() -> client.ApiClient:
    """A client for $KUBECONFIG when set (or ~/.kube/config), else the in-cluster account."""
    kubeconfig = _kubeconfig()
    if kubeconfig is not None:
        await config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    configuration = client.Configuration.get_default_copy()
    # With trust_env, aiohttp reads the proxy variables and ~/.netrc in a thread on every
    # request; the API server is reached directly (a kubeconfig proxy-url still applies).
    configuration.client_session_kwargs = {"trust_env": False}
    return client.ApiClient(configuration)
