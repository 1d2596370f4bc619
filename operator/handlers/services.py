"""Services: parse, hand to the Service controller, return nothing.

Services have no Kopf index (see `runtime.wiring.Controllers`): their held addresses are
read by one
paged list before Kopf starts.
"""

from __future__ import annotations

from typing import Any

import kopf

from lbipam.handlers.startup import controllers
from lbipam.objects import service_key, service_view


@kopf.on.event("", "v1", "services")
async def service_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    owner = await controllers(memo)
    view = None if event["type"] == "DELETED" else service_view(body, owner.settings)
    await owner.dispatcher.service_changed(service_key(body), view)
