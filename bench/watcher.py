"""The independent observer: watches one namespace's Services in its own process.

For each Service, the first watch event that shows an address is printed as one JSON line
`{"name": ..., "seen": <wall-clock>, "created": "<creationTimestamp>", "ip": ...}` the moment
it is read off the stream. A line `READY` comes first, once the watch is open.

Run by `bench.cluster` as `python -m bench.watcher SERVER CA CERT KEY NAMESPACE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time

from bench.api import Api, Credentials, ingress_ips


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def watch(credentials: Credentials, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/services"
    addressed: set[str] = set()
    async with Api(credentials, connections=2) as api:
        listed = await api.list_services(namespace)
        version = listed["metadata"]["resourceVersion"]
        for item in listed["items"]:
            if ingress_ips(item):
                addressed.add(item["metadata"]["name"])
        ready = False
        while True:
            params = {
                "watch": "1",
                "resourceVersion": version,
                "timeoutSeconds": "3600",
                "allowWatchBookmarks": "true",
            }
            async with api.session.get(path, params=params) as response:
                response.raise_for_status()
                if not ready:
                    emit("READY")
                    ready = True
                async for raw in response.content:
                    seen = time.time()
                    event = json.loads(raw)
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion", version)
                    if event["type"] not in ("ADDED", "MODIFIED"):
                        continue
                    name = obj["metadata"]["name"]
                    ips = ingress_ips(obj)
                    if ips and name not in addressed:
                        addressed.add(name)
                        created = obj["metadata"].get("creationTimestamp", "")
                        line = {"name": name, "seen": seen, "created": created, "ip": ips[0]}
                        emit(json.dumps(line))


def main() -> None:
    server, ca, cert, key, namespace = sys.argv[1:6]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(Credentials(server, ca, cert, key), namespace))


if __name__ == "__main__":
    main()
