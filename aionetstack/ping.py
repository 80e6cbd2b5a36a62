"""``python -m aionetstack.ping``: ping, the way iputils' ``ping`` does, through the stack.

Without ``--tun`` an in-process peer stack on a memory link answers, so it
needs no privileges. With ``--tun [NAME]`` it creates a TUN (kernel side
198.18.0.1/24 and 2001:2::1/64, stack 198.18.0.2 and 2001:2::2), pings the
kernel side by default, and answers pings sent to the stack while it runs.
The family follows the address; with no address, ``-6`` pings 2001:2::1.

Exit status as ``ping``: 0 when replies came, 1 when none did, 2 on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from .aio.echo import DEFAULT_PING_SIZE
from .aio.stack import Stack
from .errors import MissingPrivilegeError
from .link.base import Link

__all__ = ["main"]

KERNEL_SIDE = "198.18.0.1"
STACK_SIDE = "198.18.0.2"
PREFIX = 24
#: RFC 5180's benchmarking prefix (2001:2::/48) for IPv6, as 198.18.0.0/15 for IPv4.
KERNEL_SIDE6 = "2001:2::1"
STACK_SIDE6 = "2001:2::2"
PREFIX6 = 64
MEMORY_NETWORKS = (
    ipaddress.ip_network(f"{KERNEL_SIDE}/{PREFIX}", strict=False),
    ipaddress.ip_network(f"{KERNEL_SIDE6}/{PREFIX6}", strict=False),
)
#: The largest echo payload per family (65,535 less the IP and ICMP headers).
_MAX_SIZE = {4: 65535 - 28, 6: 65535 - 8}
_USAGE_ERROR = 2


@dataclass
class PingSummary:
    """What the two summary lines report."""

    transmitted: int = 0
    rtts: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def received(self) -> int:
        return len(self.rtts)

    def lines(self, host: str) -> list[str]:
        """The blank-line-separated summary ``ping`` prints at the end."""
        loss = 0 if not self.transmitted else round(100 * (1 - self.received / self.transmitted))
        head = f"{self.transmitted} packets transmitted, {self.received} received"
        if self.errors:
            head += f", +{self.errors} errors"
        out = [f"--- {host} ping statistics ---",
               f"{head}, {loss}% packet loss, time {round(self.elapsed * 1000)}ms"]  # fmt: skip
        if self.rtts:
            ms = [r * 1000 for r in self.rtts]
            mean = statistics.fmean(ms)
            mdev = math.sqrt(statistics.fmean([(x - mean) ** 2 for x in ms]))
            out.append(
                f"rtt min/avg/max/mdev = {min(ms):.3f}/{mean:.3f}/{max(ms):.3f}/{mdev:.3f} ms"
            )
        return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aionetstack.ping",
        description="Send ICMP echo requests through aionetstack (in-process peer, or a TUN).",
    )
    parser.add_argument(
        "host", nargs="?", help=f"address to ping (default {KERNEL_SIDE}, with -6 {KERNEL_SIDE6})"
    )
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", dest="family", action="store_const", const=4, help="IPv4 only")
    family.add_argument("-6", dest="family", action="store_const", const=6, help="IPv6 only")
    parser.add_argument(
        "-c",
        dest="count",
        type=int,
        default=4,
        help="stop after COUNT replies/requests (default 4; 0 = until interrupted)",
    )
    parser.add_argument(
        "-i", dest="interval", type=float, default=1.0, help="seconds between requests (default 1)"
    )
    parser.add_argument(
        "-s",
        dest="size",
        type=int,
        default=DEFAULT_PING_SIZE,
        help=f"payload bytes per request (default {DEFAULT_PING_SIZE})",
    )
    parser.add_argument(
        "-W",
        dest="timeout",
        type=float,
        default=1.0,
        help="seconds to wait for each reply (default 1)",
    )
    parser.add_argument(
        "--tun",
        nargs="?",
        const="aions0",
        default=None,
        metavar="NAME",
        help="create TUN NAME (default aions0) and ping through the kernel",
    )
    parser.add_argument("--pcap", metavar="FILE", help="record every packet to a pcap file")
    parser.add_argument(
        "--loss",
        type=float,
        default=0.0,
        help="in-process mode only: drop this fraction of packets each way",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="in-process mode only: seed of the simulated loss (default 1)",
    )
    return parser  # fmt: skip


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    if args.count < 0:
        parser.error("-c must be >= 0")
    if args.interval < 0:
        parser.error("-i must be >= 0")
    if args.timeout <= 0:
        parser.error("-W must be > 0")
    if not 0 <= args.loss < 1:
        parser.error("--loss must be in [0, 1)")
    host: str = args.host or (KERNEL_SIDE6 if args.family == 6 else KERNEL_SIDE)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        parser.error(f"{host!r} is not an IP address (name resolution is not supported)")
    if args.family is not None and address.version != args.family:
        parser.error(f"{host} is not an IPv{args.family} address")
    if not 0 <= args.size <= _MAX_SIZE[address.version]:
        parser.error(f"-s must be in 0..{_MAX_SIZE[address.version]} (larger is fragmented)")
    if args.tun is None and (
        not any(address in network for network in MEMORY_NETWORKS)
        or str(address) in (STACK_SIDE, STACK_SIDE6)
    ):
        parser.error(
            f"in-process mode pings a peer in {MEMORY_NETWORKS[0]} or {MEMORY_NETWORKS[1]} "
            f"other than {STACK_SIDE} and {STACK_SIDE6}"
        )
    return str(address)


_STACK_ADDRESSES = [f"{STACK_SIDE}/{PREFIX}", f"{STACK_SIDE6}/{PREFIX6}"]


async def _ping_loop(stack: Stack, host: str, args: argparse.Namespace) -> PingSummary:
    loop = asyncio.get_running_loop()
    summary = PingSummary()
    start = loop.time()
    if ":" in host:  # iputils' ping for IPv6 counts only the data
        print(f"PING {host} ({host}) {args.size} data bytes", flush=True)
    else:
        print(f"PING {host} ({host}) {args.size}({args.size + 28}) bytes of data.", flush=True)
    try:
        await _send_requests(stack, host, args, summary, start)
    except asyncio.CancelledError:
        pass  # Ctrl-C: like ping, stop and print the summary
    summary.elapsed = loop.time() - start
    return summary


async def _send_requests(
    stack: Stack, host: str, args: argparse.Namespace, summary: PingSummary, start: float
) -> None:
    loop = asyncio.get_running_loop()
    sequence = 0
    while args.count == 0 or sequence < args.count:
        sequence += 1
        summary.transmitted += 1
        try:
            reply = await stack.echo(host, timeout=args.timeout, size=args.size)
        except TimeoutError:
            pass  # ping prints nothing for an unanswered request
        except OSError as error:
            summary.errors += 1
            print(f"From {host} icmp_seq={sequence} {error.strerror or error}", flush=True)
        else:
            summary.rtts.append(reply.rtt)
            print(f"{reply.size} bytes from {reply.source}: icmp_seq={sequence} "
                  f"ttl={reply.ttl} time={reply.rtt * 1000:.3f} ms", flush=True)  # fmt: skip
        if args.count and sequence >= args.count:
            break
        await asyncio.sleep(max(0.0, start + sequence * args.interval - loop.time()))


async def _run_memory(host: str, args: argparse.Namespace) -> PingSummary:
    from .link.impair import Impairment
    from .link.memory import MemoryLink

    impairment = Impairment(loss=args.loss, seed=args.seed) if args.loss else None
    ours, theirs = MemoryLink.pair(mtu=1500, impairment=impairment)
    peer = [f"{host}/{PREFIX6 if ':' in host else PREFIX}"]
    peer.append(f"{KERNEL_SIDE}/{PREFIX}" if ":" in host else f"{KERNEL_SIDE6}/{PREFIX6}")
    async with (
        Stack(theirs, address=peer, seed=args.seed + 1),
        Stack(ours, address=_STACK_ADDRESSES, pcap=args.pcap, seed=args.seed) as stack,
    ):
        return await _ping_loop(stack, host, args)


async def _run_tun(host: str, args: argparse.Namespace) -> PingSummary:
    from .link.tun import TunLink

    kernel = [f"{KERNEL_SIDE}/{PREFIX}", f"{KERNEL_SIDE6}/{PREFIX6}"]
    link: Link = TunLink(args.tun, kernel_address=kernel)
    async with Stack(link, address=_STACK_ADDRESSES, pcap=args.pcap) as stack:
        return await _ping_loop(stack, host, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ping command; return its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    host = _validate(parser, args)
    runner = _run_tun if args.tun is not None else _run_memory
    try:
        summary = asyncio.run(runner(host, args))
    except MissingPrivilegeError:
        name = args.tun
        print(
            f"ping: creating TUN {name!r} needs CAP_NET_ADMIN (run as root), or have an "
            f"administrator pre-create it for you: sudo ip tuntap add mode tun user $USER "
            f"name {name} && sudo ip addr add {KERNEL_SIDE}/{PREFIX} dev {name} && "
            f"sudo ip link set {name} up",
            file=sys.stderr,
        )
        return _USAGE_ERROR
    except KeyboardInterrupt:
        return 1
    except OSError as error:
        print(f"ping: {error}", file=sys.stderr)
        return _USAGE_ERROR
    print()
    for line in summary.lines(host):
        print(line)
    return 0 if summary.received else 1


if __name__ == "__main__":
    sys.exit(main())
