"""``python -m aionetstack.ping``: ping, the way iputils' ``ping`` does, through the stack.

Without ``--tun`` an in-process peer stack on a memory link answers, so it
needs no privileges. With ``--tun [NAME]`` it creates a TUN (kernel side
198.18.0.1/24, stack 198.18.0.2), pings the kernel side by default, and
answers pings sent to 198.18.0.2 while it runs.

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
MEMORY_NETWORK = ipaddress.ip_network(f"{KERNEL_SIDE}/{PREFIX}", strict=False)
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
    parser.add_argument("host", nargs="?", help=f"address to ping (default {KERNEL_SIDE})")
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
    if not 0 <= args.size <= 1472:
        parser.error("-s must be in 0..1472 (one 1500-byte packet)")
    if not 0 <= args.loss < 1:
        parser.error("--loss must be in [0, 1)")
    host: str = args.host or KERNEL_SIDE
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        parser.error(f"{host!r} is not an IPv4 address (name resolution is not supported)")
    if args.tun is None and (address not in MEMORY_NETWORK or str(address) == STACK_SIDE):
        parser.error(f"in-process mode pings a peer in {MEMORY_NETWORK} other than {STACK_SIDE}")
    return host


async def _ping_loop(stack: Stack, host: str, args: argparse.Namespace) -> PingSummary:
    loop = asyncio.get_running_loop()
    summary = PingSummary()
    start = loop.time()
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
    async with (
        Stack(theirs, address=f"{host}/{PREFIX}", seed=args.seed + 1),
        Stack(ours, address=f"{STACK_SIDE}/{PREFIX}", pcap=args.pcap, seed=args.seed) as stack,
    ):
        return await _ping_loop(stack, host, args)


async def _run_tun(host: str, args: argparse.Namespace) -> PingSummary:
    from .link.tun import TunLink

    link: Link = TunLink(args.tun, kernel_address=f"{KERNEL_SIDE}/{PREFIX}")
    async with Stack(link, address=f"{STACK_SIDE}/{PREFIX}", pcap=args.pcap) as stack:
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
