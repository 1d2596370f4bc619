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
async def service_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    owner = await controllers(memo)
    # Kopf's plain dict, not its Body wrapper: parsing reads it at half the cost.
    body = event["object"]
    key = owner.services.views.known(service_key(body))
    if event["type"] == "DELETED":
        await owner.dispatcher.service_changed(key, None)
    elif not owner.services.is_echo(key, body["metadata"].get("resourceVersion")):
        # The echo of our status write (the dispatcher's rule 8) is half of a burst's
        # events: it goes nowhere, so it is told apart before the Service is parsed.
        await owner.dispatcher.service_changed(key, service_view(body, owner.settings, key))
