"""What every handler shares, Kopf's settings, and the one-time rebuild from the indexes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from lbipam.controllers.policies import PolicyReconciler
from lbipam.controllers.pools import PoolStatusWriter
from lbipam.controllers.services import Reconciler
from lbipam.ipam.registry import Registry
from lbipam.kube.writer import Kube
from lbipam.runtime.metrics import Metrics
from lbipam.settings import Settings


@dataclass
class State:
    """Built once at start-up by the app; handlers reach it through Kopf's memo."""

    settings: Settings
    registry: Registry
    kube: Kube
    metrics: Metrics
    pools: PoolStatusWriter
    reconciler: Reconciler
    policies: PolicyReconciler


def _values(index: kopf.Index[Any, Any]) -> list[Any]:
    return [value for key in index for value in index[key]]


def rebuilt_state(memo: kopf.Memo, indexes: Mapping[str, Any]) -> State:
    """The shared state; on the first handler call, rebuilt first.

    Kopf runs no handler before the pool and namespace indexes have their initial listing,
    and the Services were listed before Kopf started: at this point the registry learns every
    pool and every address held in the cluster before anything new is handed out.
    """
    state: State = memo.state
    if state.reconciler.rebuilt:
        return state
    state.reconciler.namespace_labels = indexes["namespace_labels"]
    state.reconciler.rebuild(_values(indexes["pool_specs"]))
    return state


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Nothing of Kopf's may land on Services: no peering objects, no posted log Events.
    settings.peering.standalone = True
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10


@kopf.on.cleanup()
async def end_the_term(memo: kopf.Memo, **_: Any) -> None:
    """Kopf is stopping (on a signal): this term of leadership is over.

    The term's end is also the stop flag given to Kopf. Left unset, Kopf's shutdown waits
    5 s for its own waiter on that flag, and every rolling update would pay for it.
    """
    term = memo.state.kube.term
    if term is not None:
        term.ended.set()
