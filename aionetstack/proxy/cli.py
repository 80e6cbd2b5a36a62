"""``python -m aionetstack.proxy``: relay every flow routed into a TUN.

    python -m aionetstack.proxy --tun aionsp0 --networks 198.19.0.0/16 --socks5 198.18.0.1:1080
    python -m aionetstack.proxy --tun aionsp0 --networks 198.19.0.0/16 --direct --mark 1

It creates the TUN (kernel side ``--kernel-address``, 198.18.0.1/24 by default)
or attaches to an existing one (``--kernel-address none`` leaves it as it is),
intercepts ``--networks`` (``--route`` also routes them into the TUN), and
relays TCP and UDP to the SOCKS5 server or to kernel sockets. A statistics line
goes to stderr every ``--stats-interval`` seconds; Ctrl-C or SIGTERM stops it
cleanly (pending SYNs are reset, the TUN is closed). Exit status 0 after a
clean stop, 2 on a usage or setup error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence

from ..aio.stack import Stack
from ..config import InterceptConfig, StackConfig
from ..errors import MissingPrivilegeError
from .relay import Relay
from .upstream import DirectUpstream, Socks5Upstream, Upstream

__all__ = ["main"]

_USAGE_ERROR = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aionetstack.proxy",
        description="Relay TCP and UDP flows routed into a TUN to a SOCKS5 server or directly.",
    )
    parser.add_argument("--tun", required=True, help="TUN interface to create or attach to")
    parser.add_argument(
        "--networks",
        nargs="+",
        required=True,
        metavar="PREFIX",
        help="intercepted networks, e.g. 198.19.0.0/16 2001:2:1::/48",
    )
    way = parser.add_mutually_exclusive_group(required=True)
    way.add_argument("--socks5", metavar="HOST:PORT", help="relay through this SOCKS5 server")
    way.add_argument("--direct", action="store_true", help="relay with kernel sockets")
    parser.add_argument(
        "--kernel-address",
        default="198.18.0.1/24",
        help="kernel side of the TUN ('none': leave the TUN as it is)",
    )
    parser.add_argument("--address", default="198.18.0.2/24", help="the stack's own address")
    parser.add_argument(
        "--route",
        action="store_true",
        help="also run 'ip route replace PREFIX dev TUN' for each network",
    )
    parser.add_argument(
        "--mark",
        type=lambda text: int(text, 0),
        default=None,
        help="--direct: SO_MARK for upstream sockets (see the docs on loops)",
    )
    parser.add_argument(
        "--bind-interface", default=None, help="--direct: SO_BINDTODEVICE for upstream sockets"
    )
    parser.add_argument(
        "--redirect",
        default=None,
        metavar="HOST",
        help="--direct: send every flow to HOST (same port) instead",
    )
    parser.add_argument("--no-udp", action="store_true", help="do not intercept UDP")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=4.0,
        help="seconds to reach the upstream before refusing (default 4)",
    )
    parser.add_argument(
        "--pending-timeout",
        type=float,
        default=5.0,
        help="seconds a SYN is held at most (default 5)",
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=1024,
        help="SYNs held at once; more are dropped (default 1024)",
    )
    parser.add_argument("--mtu", type=int, default=1500, help="TUN MTU (default 1500)")
    parser.add_argument("--no-offload", action="store_true", help="no TUN offloads (TSO/GRO)")
    parser.add_argument(
        "--stats-interval",
        type=float,
        default=10.0,
        help="seconds between statistics lines on stderr (0: none)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each refused flow")
    return parser


def _upstream(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Upstream:
    if args.socks5 is not None:
        host, _, port = args.socks5.rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            parser.error(f"--socks5 wants HOST:PORT, got {args.socks5!r}")
        if args.mark is not None or args.bind_interface or args.redirect:
            parser.error("--mark, --bind-interface and --redirect go with --direct")
        return Socks5Upstream(host, int(port), connect_timeout=args.connect_timeout)
    try:
        return DirectUpstream(
            mark=args.mark,
            bind_interface=args.bind_interface,
            redirect=args.redirect,
            connect_timeout=args.connect_timeout,
        )
    except ValueError as error:
        parser.error(f"--redirect: {error}")
        raise


def _check_networks(parser: argparse.ArgumentParser, networks: Sequence[str]) -> None:
    for text in networks:
        try:
            ipaddress.ip_network(text)
        except ValueError as error:
            parser.error(f"--networks: {error}")


def _statistics_line(stack: Stack, relay: Relay) -> str:
    intercept = stack.statistics().get("intercept", {})
    return (
        f"aionetstack.proxy: {relay.stats.line()} "
        f"pending={intercept.get('tcp_pending_current', 0)} "
        f"syns_dropped={intercept.get('tcp_syns_dropped_pending_full', 0)} "
        f"timed_out={intercept.get('tcp_pending_timed_out', 0)} "
        f"handler_errors={intercept.get('handler_errors', 0)}"
    )


async def _report(stack: Stack, relay: Relay, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        print(_statistics_line(stack, relay), file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, upstream: Upstream) -> None:
    """Run the proxy until SIGINT or SIGTERM."""
    from ..link.tun import TunLink

    kernel = None if args.kernel_address.lower() == "none" else args.kernel_address
    link = TunLink(args.tun, kernel_address=kernel, mtu=args.mtu, offload=not args.no_offload)
    config = StackConfig(
        intercept=InterceptConfig(
            pending_timeout=args.pending_timeout, max_pending_tcp=args.max_pending
        )
    )
    relay = Relay(upstream)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Stack(link, address=args.address, config=config) as stack:
        interception = await stack.intercept(
            tcp=relay.on_tcp, udp=None if args.no_udp else relay.on_udp, networks=args.networks
        )
        if args.route:
            for network in args.networks:
                subprocess.run(
                    ["ip", "route", "replace", network, "dev", link.name],
                    check=True,
                    capture_output=True,
                )
        print(
            f"aionetstack.proxy: intercepting {' '.join(args.networks)} on {link.name}",
            file=sys.stderr,
            flush=True,
        )
        reporter = None
        if args.stats_interval > 0:
            reporter = loop.create_task(_report(stack, relay, args.stats_interval))
        try:
            await stop.wait()
        finally:
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
            interception.close()
            print(_statistics_line(stack, relay), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the proxy command; return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _check_networks(parser, args.networks)
    if not 0 < args.connect_timeout < args.pending_timeout:
        parser.error(
            "--connect-timeout must be > 0 and shorter than --pending-timeout "
            "(the held SYN is reset when the pending timeout ends)"
        )
    if args.max_pending < 1:
        parser.error("--max-pending must be >= 1")
    upstream = _upstream(parser, args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    try:
        asyncio.run(run(args, upstream))
    except MissingPrivilegeError:
        print(
            f"proxy: creating TUN {args.tun!r} needs CAP_NET_ADMIN (run as root), or "
            "pre-create it and pass --kernel-address none",
            file=sys.stderr,
        )
        return _USAGE_ERROR
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"proxy: {error}", file=sys.stderr)
        return _USAGE_ERROR
    return 0
