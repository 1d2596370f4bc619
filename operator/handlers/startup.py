"""Kopf's settings, and the one rebuild from the indexes before the first handler acts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from lbipam.kube.credentials import from_kubeconfig, identity, in_cluster, kubeconfig_paths
from lbipam.runtime.wiring import Controllers


def controllers(memo: kopf.Memo, indexes: Mapping[str, Any]) -> Controllers:
    """This term's controllers; on the first handler call, rebuilt first.

    Kopf runs no handler before the pool and namespace indexes have their initial listing,
    and the Services were listed before Kopf started: at this point every pool and every
    address held in the cluster is known before anything new is handed out.
    """
    built: Controllers = memo.controllers
    if not built.rebuilt:
        pools, namespaces = indexes["pool_index"], indexes["namespace_index"]
        cidrs = indexes["service_cidr_index"]
        built.rebuild(
            (pool for name in pools for pool in pools[name]),
            {name: labels for name in namespaces for labels in namespaces[name]},
            {name: ranges for name in cidrs for ranges in cidrs[name]},
        )
    return built


class NoDiffBase(kopf.DiffBaseStorage):
    """No "essence" of objects: only on.create/update/delete handlers compare one.

    Kopf builds it on every event anyway, with two deep copies of the whole body (Services
    carry their managedFields); with only event handlers and indexes nothing reads it.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Nothing of Kopf's may land on Services: no peering objects, no posted log Events.
    settings.peering.standalone = True
    settings.posting.enabled = False
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10


@kopf.on.cleanup()
async def end_the_term(memo: kopf.Memo, **_: Any) -> None:
    """Kopf is stopping (on a signal): this term of leadership is over.

    The term's end is also the stop flag given to Kopf. Left unset, Kopf's shutdown waits
    5 s for its own waiter on that flag, and every rolling update would pay for it.
    """
    owner: Controllers = memo.controllers
    owner.writer.term.ended.set()


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Kopf connects where, and as whom, the operator's own client does.

    Kopf's own kubeconfig login runs no exec credential plugin (EKS, GKE, AKS, OIDC), so the
    kubeconfig is read by the operator's client; Kopf logs in again at the plugin's expiry. In
    a pod, Kopf's own login names https://kubernetes.default.svc, which needs cluster DNS; the
    pod is given the API server's address in KUBERNETES_SERVICE_HOST/PORT, which the
    operator's client uses, so Kopf is given it too.
    """
    paths = kubeconfig_paths()
    if not paths:
        info = kopf.login_with_service_account(**kwargs)
        return None if info is None else dataclasses.replace(info, server=in_cluster().server)
    creds = from_kubeconfig(paths)
    now = await identity(creds)
    cert, key = now.cert or (None, None)
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_data=creds.trust.ca_data,
        insecure=creds.trust.insecure,
        token=now.token,
        certificate_data=cert,
        private_key_data=key,
        default_namespace=creds.namespace,
        proxy_url=creds.proxy,
        expiration=now.expires,
    )
