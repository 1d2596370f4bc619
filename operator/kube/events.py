"""Core Events, posted in the background: an Event must never delay an allocation."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from lbipam.api import COMPONENT, GROUP
from lbipam.background import Background
from lbipam.clock import timestamp
from lbipam.ha.term import Term
from lbipam.kube.client import Api
from lbipam.kube.errors import is_status

log = logging.getLogger(__name__)


def event_manifest(
    involved: Mapping[str, str],
    kind: str,
    reason: str,
    message: str,
    warning: bool,
    instance: str,
) -> dict[str, Any]:
    """A core Event on the involved object, as the operator posts it."""
    # Cluster-scoped objects' Events live in "default", where `kubectl describe` looks.
    namespace = involved.get("namespace") or "default"
    stamp = timestamp()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
        "involvedObject": {"kind": kind, **involved},
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": f"{GROUP}/{COMPONENT}",
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventPoster:
    """Posts Events while the term lasts; a failed post is logged, never raised."""

    def __init__(self, api: Api, term: Term) -> None:
        self.api = api
        self.term = term
        self.instance = os.environ.get("HOSTNAME", COMPONENT)
        self._posting = Background()

    def post(
        self, involved: Mapping[str, str], kind: str, reason: str, message: str, warning: bool
    ) -> None:
        """`involved` has apiVersion, name, uid and, for namespaced objects, namespace."""
        if self.term.active():
            self._posting.start(self._post(involved, kind, reason, message, warning))

    async def drain(self) -> None:
        """Let queued Events go out before the client closes."""
        await self._posting.drain(5)

    async def _post(
        self, involved: Mapping[str, str], kind: str, reason: str, message: str, warning: bool
    ) -> None:
        body = event_manifest(involved, kind, reason, message, warning, self.instance)
        namespace = body["metadata"]["namespace"]
        try:
            await self.api.request("POST", f"/api/v1/namespaces/{namespace}/events", body)
        except Exception as error:
            # A namespace being deleted takes its Services' Events with it: nobody can read
            # them, so nothing is lost and nothing is worth a warning.
            terminating = is_status(error, 403) and "NamespaceTerminating" in str(
                getattr(error, "body", None)
            )
            log.log(
                logging.DEBUG if terminating else logging.WARNING,
                "could not post %s Event on %s: %s",
                reason,
                involved.get("name"),
                error,
            )
