"""The ``vk-eci`` command: one home for every sub-command and its flags.

Sub-commands import their implementation lazily so that ``vk-eci cluster up`` does not pay for
the ECI SDK and ``vk-eci emulator`` does not pay for the Kubernetes client.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cluster(args: argparse.Namespace) -> int:
    from vk_eci.controlplane import commands

    if args.action == "up":
        return commands.cli_up(Path(args.dir), k8s_version=args.k8s_version,
                              node_network=args.node_network,
                              with_metrics_server=args.metrics_server,
                              with_cluster_dns=args.cluster_dns)
    if args.action == "down":
        return commands.cli_down(Path(args.dir))
    if args.action == "build":
        return commands.cli_build()
    return commands.cli_status(Path(args.dir))


def _emulator(args: argparse.Namespace) -> int:
    from vk_eci.emulator import cli as emulator_cli

    return emulator_cli.main(args)


def _run(args: argparse.Namespace) -> int:
    from vk_eci import config
    from vk_eci.runner import run as runner

    try:
        settings = config.from_args(args)
    except config.ConfigError as e:
        print(f"vk-eci run: {e}", file=sys.stderr)
        return 2
    return runner.main(settings)


def _demo(args: argparse.Namespace) -> int:
    from vk_eci import demo

    return demo.main(args)


def _match(args: argparse.Namespace) -> int:
    from vk_eci import match

    return match.main(args)


def _advise(args: argparse.Namespace) -> int:
    from vk_eci import advise

    return advise.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vk-eci",
        description="A virtual Kubernetes node that runs pods on Alibaba Cloud ECI.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("cluster", help="a local Kubernetes control plane on 127.0.0.1")
    p.add_argument("action", choices=["up", "down", "status", "build"])
    p.add_argument("--dir", default="_cluster", help="state directory (default: ./_cluster)")
    p.add_argument("--k8s-version", default=None, help=argparse.SUPPRESS)
    p.add_argument("--node-network", action="store_true",
                   help="up: also make a network namespace for the node with a veth pair on a "
                        "private /30 (writes DIR/node-netns, node-ip, host-ip, node-kubeconfig; "
                        "the API server listens on the host end); needs root")
    p.add_argument("--metrics-server", action="store_true",
                   help="up: also run metrics-server (kubectl top, HPAs); needs --node-network")
    p.add_argument("--cluster-dns", action="store_true",
                   help="up: also run CoreDNS as the cluster DNS (the kube-dns Service; its "
                        "ClusterIP in DIR/cluster-dns-ip, for the node's --cluster-dns); needs "
                        "--node-network")
    p.set_defaults(func=_cluster)

    p = sub.add_parser("emulator", help="serve the offline ECI API (the SDK talks to it as to ECI)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089)
    p.add_argument("--access-key-id", required=True)
    p.add_argument("--access-key-secret", required=True)
    p.add_argument("--region", default="cn-hangzhou")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply every modelled duration (0.01 = 100x faster)")
    p.add_argument("--rate-limit", action="append", default=[], metavar="ACTION=PER_MINUTE",
                   help="override one action's per-minute limit (repeatable; 0 = unlimited); "
                   "defaults are ECI's documented ones, DescribeContainerGroupStatus 2000")
    p.add_argument("--model", action="append", default=[], metavar="NAME=VALUE",
                   help="set one of the emulator's guesses about ECI (repeatable), e.g. "
                        "auto_create=partial; the options and their sources are in "
                        "docs/EMULATOR.md")
    # A real network and real processes for groups (docs/DEVELOPING.md, "The test world").
    p.add_argument("--group-network", action="store_true",
                   help="give each group a network namespace with its IntranetIp on a bridge the "
                        "host reaches (private /24 of 10.251.0.0/16; nothing routed beyond the "
                        "machine); needs root and iproute2")
    p.add_argument("--image-program", action="append", default=[],
                   metavar="IMAGE_PATTERN=PROGRAM",
                   help="run containers whose image matches (fnmatch, e.g. python:*) for real as "
                        "PROGRAM in their group's namespace (repeatable; needs --group-network)")
    p.set_defaults(func=_emulator)

    p = sub.add_parser("run", help="run the virtual node")
    from vk_eci import config

    config.add_arguments(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("demo", help="control plane + ECI emulator + node, all local")
    p.add_argument("--dir", default="_demo", help="state directory (default: ./_demo)")
    p.add_argument("--time-scale", type=float, default=0.1,
                   help="speed of the emulated cloud (0.1 = ten times faster than ECI)")
    p.add_argument("--once", action="store_true",
                   help="exit after the walkthrough instead of running until Ctrl-C")
    p.set_defaults(func=_demo)

    p = sub.add_parser("match", help="which image cache each pod of a manifest would get, and "
                       "why (exit 1 when a pod would be blocked)")
    p.add_argument("-f", "--file", required=True, help="manifest (YAML; - for stdin)")
    p.add_argument("--caches-from", metavar="FILE",
                   help="an exported DescribeImageCaches answer (JSON/YAML) instead of ECI")
    p.add_argument("--region", help="ECI region (default $VK_ECI_REGION)")
    p.add_argument("--eci-endpoint", help="ECI endpoint host[:port] (default "
                   "$VK_ECI_ECI_ENDPOINT, else the region's)")
    p.add_argument("--eci-protocol", choices=["https", "http"],
                   help="https (default) or http (only for the local emulator)")
    p.add_argument("--insecure-eci-endpoint", action="store_true",
                   help="allow http to an endpoint that is not loopback (clear text)")
    p.add_argument("--imagecache-auto-create", action=argparse.BooleanOptionalAction,
                   default=True, help="as the node's flag of that name (default on)")
    p.set_defaults(func=_match)

    p = sub.add_parser("advise", help="which ImageCaches should exist for the observed demand "
                       "(create/keep/update/retire), as a table or ImageCache YAML")
    from vk_eci.advise import add_arguments as advise_arguments

    advise_arguments(p)
    p.set_defaults(func=_advise)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
