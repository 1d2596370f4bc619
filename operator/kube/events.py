"""Core Events, posted in the background: an Event must never delay an allocation."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from kubernetes.aio import client

from lbipam.api import COMPONENT, GROUP
from lbipam.background import Background
from lbipam.clock import timestamp
from lbipam.ha.term import Term
from lbipam.kube.errors import read_json

log = logging.getLogger(__name__)


class EventPoster:
    """Posts Events while the term lasts; a failed post is logged, never raised."""

    def __init__(self, core: client.CoreV1Api, term: Term) -> None:
        self.core = core
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
        # Cluster-scoped objects' Events live in "default", where `kubectl describe` looks.
        namespace = involved.get("namespace") or "default"
        stamp = timestamp()
        # The generated client types bodies as its models; it sends plain dicts as they are.
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": {"kind": kind, **involved},
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": f"{GROUP}/{COMPONENT}",
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            response = await self.core.create_namespaced_event_without_preload_content(
                namespace, body
            )
            await read_json(response)
        except Exception as error:
            log.warning("could not post %s Event on %s: %s", reason, involved.get("name"), error)
