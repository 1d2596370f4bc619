"""`kubectl lbipam …` (the `kubectl-lbipam` command kubectl finds on PATH): read-only views of
pools, Services and addresses, and a pool manifest checker for CI."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

import aiohttp

from lbipam.ipam.requests import ServiceKey
from lbipam.kube.client import Api
from lbipam.kube.credentials import Credentials, credentials, from_kubeconfig, kubeconfig_paths
from lbipam.kube.errors import ApiError
from lbipam.kube.exec_plugin import ExecError
from lbipam.kubectl.cluster import Cluster, api_message
from lbipam.kubectl.pools import pools_report
from lbipam.kubectl.render import Style, counted, dump
from lbipam.kubectl.report import Report
from lbipam.kubectl.services import services_report
from lbipam.kubectl.validate import check_offline, check_online, read_pools, validate_report
from lbipam.kubectl.view import View
from lbipam.kubectl.who import who_report
from lbipam.kubectl.why import why_report
from lbipam.settings import Settings

VALIDATE = """Checks the IPPools in each FILE with lbipam's own parser, then, when the cluster
can be reached, with the API server's own validation (a dry run that stores nothing) and
against the cluster: overlaps with other pools, ServiceCIDRs and node addresses, and the
Services a shrink would take addresses from. Exits 1 on an error (--strict: on a warning too).
"""
UNREACHABLE = (OSError, aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, ExecError)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("cluster and output")
    group.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)",
    )
    group.add_argument("--context", help="kubeconfig context (default: its current context)")
    group.add_argument(
        "-o",
        "--output",
        choices=("table", "json", "yaml"),
        default="table",
        help="output format (default: table)",
    )
    group.add_argument(
        "--lb-class",
        default=Settings.lb_class,
        help=f"the operator's LBIPAM_LB_CLASS (default: {Settings.lb_class})",
    )
    group.add_argument(
        "--no-default-class",
        action="store_true",
        help="the operator runs with LBIPAM_DEFAULT_CLASS=false (Services without a class "
        "are not its)",
    )
    return common


COMMANDS = {
    "pools": (
        "each pool: how full, its conditions, who holds its addresses",
        "Each IPPool with a usage bar, total/allocated/available, what keeps it from handing "
        "out addresses, and (--show-services) the Services holding its addresses and the "
        "addresses held after release, for whom and until when.",
    ),
    "services": (
        "who holds which address; --pending: who waits and why",
        "The LoadBalancer Services lbipam handles, by namespace, with their addresses and "
        "pools. --pending lists those without an address and the reason lbipam gives.",
    ),
    "why": (
        "one Service in plain words",
        "Everything about one Service: what it asked for, the pools it may use, why it holds "
        "what it holds or why it waits, its NetworkPolicy and its last Events.",
    ),
    "who": (
        "who holds an address, and its history",
        "The Service holding an address, its IPAddress claim, its pool, and the recent lbipam "
        "Events that named it.",
    ),
    "validate": ("check IPPool manifests (exits 1 on a problem)", VALIDATE),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl lbipam",
        description="See lbipam's pools, Services and addresses, and check IPPool manifests. "
        "Reads only; the same client as the operator, so any kubeconfig kubectl uses works.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    made = {
        name: sub.add_parser(name, parents=[common], help=short, description=long)
        for name, (short, long) in COMMANDS.items()
    }
    made["pools"].add_argument(
        "--show-services",
        action="store_true",
        help="list the Services holding its addresses, and its holds after release",
    )
    made["services"].add_argument("-n", "--namespace", help="only this namespace (default: all)")
    made["services"].add_argument(
        "--pending", action="store_true", help="only Services without an address, with why"
    )
    made["why"].add_argument(
        "service", metavar="[NAMESPACE/]SERVICE", help="the namespace defaults to the context's"
    )
    made["who"].add_argument("address", metavar="ADDRESS")
    validate = made["validate"]
    validate.add_argument("files", metavar="FILE", nargs="+", type=Path)
    validate.add_argument("--offline", action="store_true", help="do not contact the cluster")
    validate.add_argument("--strict", action="store_true", help="warnings fail too")
    return top


def _credentials(args: argparse.Namespace) -> Credentials:
    if args.kubeconfig is not None:
        return from_kubeconfig(args.kubeconfig, args.context)
    if args.context is not None:
        return from_kubeconfig(kubeconfig_paths(), args.context)
    return credentials()


def _settings(args: argparse.Namespace) -> Settings:
    return dataclasses.replace(
        Settings(), lb_class=args.lb_class, default_class=not args.no_default_class
    )


async def _with_cluster(args: argparse.Namespace, style: Style) -> Report:
    creds = _credentials(args)
    api = Api(creds, connections=8)
    try:
        cluster = Cluster(api)
        if args.command == "validate":
            return await _validate(args, style, cluster, creds.server)
        view = View(await cluster.snapshot(), _settings(args))
        if args.command == "pools":
            if args.show_services:
                view.restore_holds(await cluster.our_claims())
            return pools_report(view, style, args.show_services)
        if args.command == "services":
            return services_report(view, style, args.namespace, args.pending)
        if args.command == "why":
            namespace, _, name = args.service.rpartition("/")
            return await why_report(
                cluster, view, ServiceKey(namespace or creds.namespace, name), style
            )
        return await who_report(cluster, view, args.address, style)
    finally:
        await api.close()


async def _validate(
    args: argparse.Namespace, style: Style, cluster: Cluster, server: str
) -> Report:
    checked = [pool for path in args.files for pool in read_pools(path)]
    for pool in checked:
        check_offline(pool)
    snapshot = await cluster.snapshot()
    view = View(snapshot, _settings(args))
    nodes = await cluster.nodes()
    for pool in checked:
        await check_online(pool, cluster, view, nodes)
    counts = ", ".join(
        counted(len(things), kind)
        for things, kind in (
            (snapshot.pools, "pool"),
            (snapshot.service_cidrs, "ServiceCIDR"),
            (nodes, "node"),
        )
    )
    note = f"Checked against the cluster at {server}: {counts}."
    return validate_report(checked, note, style, args.strict)


def _offline(args: argparse.Namespace, style: Style, why: str) -> Report:
    checked = [pool for path in args.files for pool in read_pools(path)]
    for pool in checked:
        check_offline(pool)
    return validate_report(checked, f"Checked offline only ({why}).", style, args.strict)


async def _run(args: argparse.Namespace, style: Style) -> Report:
    if args.command == "validate" and args.offline:
        return _offline(args, style, "--offline")
    try:
        return await _with_cluster(args, style)
    except ApiError as error:
        if args.command == "validate":
            return _offline(args, style, f"the cluster said {error.status} {error.reason}")
        raise
    except UNREACHABLE as error:
        if args.command == "validate":
            return _offline(args, style, f"cluster not reachable: {error}")
        raise


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    style = Style.for_stream(sys.stdout) if args.output == "table" else Style()
    try:
        report = asyncio.run(_run(args, style))
    except ApiError as error:
        print(f"kubectl lbipam: the API server refused: {api_message(error)}", file=sys.stderr)
        return 1
    except UNREACHABLE as error:
        print(f"kubectl lbipam: cannot reach the cluster: {error}", file=sys.stderr)
        return 1
    if args.output == "table":
        sys.stdout.write("".join(line + "\n" for line in report.lines))
    else:
        sys.stdout.write(dump(report.data, args.output))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
