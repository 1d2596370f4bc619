"""Command line: `lbipam run` starts the operator, `lbipam version` prints the version."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

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
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"lbipam {__version__}")
        return 0
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
