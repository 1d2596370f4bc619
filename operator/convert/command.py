"""`lbipam convert`: read files or the cluster, print IPPools, warn on stderr, judge `--check`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import yaml

from lbipam.convert.dispatch import convert
from lbipam.convert.model import Converted
from lbipam.kube.client import Api, connect
from lbipam.kube.errors import ApiError

# What --from-cluster lists: group, versions in order of preference (a CRD serves the same
# objects in each of its versions), plural, kind. Announcers are read to be warned about.
CLUSTER_KINDS = (
    ("metallb.io", ("v1beta1",), "ipaddresspools", "IPAddressPool"),
    ("metallb.io", ("v1beta1",), "l2advertisements", "L2Advertisement"),
    ("metallb.io", ("v1beta1",), "bgpadvertisements", "BGPAdvertisement"),
    ("cilium.io", ("v2", "v2alpha1"), "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool"),
    ("cilium.io", ("v2alpha1",), "ciliuml2announcementpolicies", "CiliumL2AnnouncementPolicy"),
    ("cilium.io", ("v2alpha1",), "ciliumbgppeeringpolicies", "CiliumBGPPeeringPolicy"),
    ("cilium.io", ("v2", "v2alpha1"), "ciliumbgpadvertisements", "CiliumBGPAdvertisement"),
)
PAGE = "500"


class InputError(Exception):
    """The input could not be read: a missing file, or YAML that is not objects."""


def run(files: list[str], from_cluster: bool, check: bool, out: TextIO, err: TextIO) -> int:
    """0 when done (with --check: and nothing lost), 1 when --check found a loss, 2 on bad input."""
    try:
        objects = read_files(files, sys.stdin) if files else []
        if from_cluster:
            objects += asyncio.run(read_cluster())
    except InputError as error:
        print(f"lbipam convert: {error}", file=err)
        return 2
    results = convert(objects)
    out.write(render(results))
    for line in warnings(results):
        print(line, file=err)
    lost = sum(len(r.lost) for r in results)
    if check and lost:
        print(f"lbipam convert: --check: {lost} thing(s) could not be converted", file=err)
        return 1
    return 0


def read_files(paths: Iterable[str], stdin: TextIO) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = stdin.read() if path == "-" else Path(path).read_text()
            documents = list(yaml.safe_load_all(text))
        except (OSError, yaml.YAMLError) as error:
            raise InputError(f"{path}: {error}") from None
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict):
                raise InputError(f"{path}: a document is not an object: {document!r:.60}")
            objects.append(document)
    return objects


async def read_cluster(api: Api | None = None) -> list[dict[str, Any]]:
    """Every object of CLUSTER_KINDS the cluster serves, read only (GET, in pages)."""
    try:
        client = api or connect()
    except (OSError, KeyError) as error:
        raise InputError(
            f"no cluster: neither a kubeconfig ($KUBECONFIG, ~/.kube/config) nor a pod ({error})"
        ) from None
    try:
        objects: list[dict[str, Any]] = []
        for group, versions, plural, kind in CLUSTER_KINDS:
            objects += await _first_served(client, group, versions, plural, kind)
        return objects
    except (OSError, aiohttp.ClientError) as error:
        raise InputError(f"cannot reach the API server: {error}") from None
    finally:
        if api is None:
            await client.close()


async def _first_served(
    api: Api, group: str, versions: tuple[str, ...], plural: str, kind: str
) -> list[dict[str, Any]]:
    for version in versions:
        path = f"/apis/{group}/{version}/{plural}"
        try:
            return await _listed(api, path, f"{group}/{version}", kind)
        except ApiError as error:
            if error.status != 404:
                raise InputError(f"listing {plural}.{group}: {error}") from None
    return []  # not installed: nothing of that kind to convert


async def _listed(api: Api, path: str, api_version: str, kind: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params = {"limit": PAGE}
    while True:
        page = await api.request("GET", path, params=params)
        # List answers may leave out each item's apiVersion and kind.
        items += [{"apiVersion": api_version, "kind": kind, **item} for item in page["items"]]
        following = (page.get("metadata") or {}).get("continue")
        if not following:
            return items
        params = {"limit": PAGE, "continue": following}


def render(results: Iterable[Converted]) -> str:
    """The IPPools as YAML documents, each under a comment saying where it came from."""
    documents = [
        f"# from {r.source}\n" + yaml.safe_dump(r.pool, sort_keys=False)
        for r in results
        if r.pool is not None
    ]
    return "---\n".join(documents)


def warnings(results: Iterable[Converted]) -> list[str]:
    """One line per loss ("lost:") and per change of form ("note:"), naming the object."""
    lines = []
    for result in results:
        lines += [f"lbipam convert: {result.source}: lost: {text}" for text in result.lost]
        lines += [f"lbipam convert: {result.source}: note: {text}" for text in result.notes]
    return lines
