"""`lbipam run` with the Node handler's filter taken out: every Node event, heartbeats too, goes
on to the pools as if the Node's addresses had changed. Only `bench.nodes` runs it, to show
what the filter saves; run as a script so the checkout's `operator/` is not on `sys.path`."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lbipam.cli import main
from lbipam.controllers.pools import PoolController
from lbipam.ipam.registry import RangeKind


def never_known(self: PoolController, kind: RangeKind, name: str) -> Sequence[str] | None:
    return ("never equal to a Node's addresses",)


if __name__ == "__main__":
    PoolController.known_reserved = never_known  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
