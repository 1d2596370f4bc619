"""Kopf's settings, its login, and where its handlers meet the term's start-up."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import kopf

from lbipam.ha.term import Term
from lbipam.ipam.pool import PoolSpec
from lbipam.kube.credentials import from_kubeconfig, identity, in_cluster, kubeconfig_paths
from lbipam.objects import PoolView
from lbipam.runtime.startup import Gate, Indexes
from lbipam.runtime.wiring import Controllers


async def controllers(memo: kopf.Memo) -> Controllers:
    """This term's controllers, once its start-up is through (see `runtime.startup`)."""
    gate: Gate = memo.gate
    return await gate.enter()


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
    # Each object's worker holds its last event's whole body until it exits: at 5 s (Kopf's
    # default), a burst keeps the bodies of the last 5 s of Services alive. A Service's
    # events come in a cluster (its creation, then the echo of our status write), so a
    # worker that waits 0.5 s rarely has to be spawned again.
    settings.queueing.idle_timeout = 0.5


# Kopf's ActivityFn type knows no index kwargs; its own indexing example ignores it likewise.
@kopf.on.startup()  # type: ignore[arg-type]
async def hand_over_indexes(
    memo: kopf.Memo,
    pool_index: kopf.Index[str, tuple[PoolView, PoolSpec]],
    namespace_index: kopf.Index[str, dict[str, str]],
    service_cidr_index: kopf.Index[str, tuple[str, ...]],
    **_: Any,
) -> None:
    """Kopf's indexes, empty yet, to the start-up, which reads them once Kopf has filled
    them: Kopf's docs say indexes handed over here may be read later, and that no resource
    handler runs before they are complete."""
    gate: Gate = memo.gate
    gate.hand_over(Indexes(pool_index, namespace_index, service_cidr_index))


@kopf.on.cleanup()
async def end_the_term(memo: kopf.Memo, **_: Any) -> None:
    """Kopf is stopping (on a signal): this term of leadership is over.

    The term's end is also the stop flag given to Kopf. Left unset, Kopf's shutdown waits
    5 s for its own waiter on that flag, and every rolling update would pay for it.
    """
    term: Term = memo.term
    term.ended.set()


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
