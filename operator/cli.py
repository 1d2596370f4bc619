"""Command line: `lbipam run` starts the operator, `lbipam convert` converts other controllers'
pools, `lbipam version` prints the version."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from lbipam import __version__
from lbipam.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbipam",
        description="Assigns external IPs to LoadBalancer Services from IPPool resources.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run the operator",
        description="Run the operator against the cluster of the in-cluster service account, "
        "or of $KUBECONFIG. Every flag defaults to its environment variable, then to the "
        "value shown.",
    )
    for spec in dataclasses.fields(Settings):
        run.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest=spec.name,
            metavar=spec.metadata["env"],
            default=None,
            help=f"{spec.metadata['help']} (default: ${spec.metadata['env']} or {spec.default!r})",
        )
    _convert_parser(sub)
    sub.add_parser("version", help="print the version")
    return parser


def _convert_parser(sub: Any) -> None:
    convert = sub.add_parser(
        "convert",
        help="print MetalLB's and Cilium's pools as IPPools",
        description="Print MetalLB IPAddressPools (metallb.io/v1beta1) and Cilium "
        "CiliumLoadBalancerIPPools (cilium.io/v2alpha1, v2) as equivalent IPPools (YAML on "
        "stdout). What an IPPool cannot say is warned about on stderr, one line per object.",
    )
    convert.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help="a YAML file of objects, several documents allowed; - reads stdin; repeatable",
    )
    convert.add_argument(
        "--from-cluster",
        action="store_true",
        help="also read them from the cluster of $KUBECONFIG (or the pod's), read only",
    )
    convert.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when anything could not be converted (for CI)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"lbipam {__version__}")
        return 0
    if args.command == "convert":
        if not args.files and not args.from_cluster:
            parser.error("convert: give -f FILE (- for stdin) or --from-cluster")
        from lbipam.convert.command import run as convert

        return convert(args.files, args.from_cluster, args.check, sys.stdout, sys.stderr)
    overrides = {spec.name: getattr(args, spec.name) for spec in dataclasses.fields(Settings)}
    try:
        settings = Settings.load(os.environ, overrides)
    except SettingsError as error:
        print(f"lbipam: invalid setting: {error}", file=sys.stderr)
        return 2

    from lbipam.runtime.app import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
