"""Ping RTT: the kernel pinging aionetstack over TUN vs the kernel pinging a kernel over veth.

Run as root: ``python benchmarks/ping_rtt.py [--count N] [--rounds R]``. Everything
happens inside network namespaces this script creates and deletes: the
stack's TUN (198.18.0.1 kernel side, 198.18.0.2 stack) and a veth pair to a
second namespace (198.18.1.1 <-> 198.18.1.2). Rounds alternate between the two
targets so both see the same machine conditions. Prints median/p99 per
target and their ratio, and writes ``benchmarks/results/ping_rtt.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import summary, write_result

from aionetstack import Stack, TunLink
from aionetstack.testing.netns import network_namespace

TIME = re.compile(r"time=([\d.]+) ms")


async def ping_rtts(target: str, count: int, interval: float) -> list[float]:
    """Per-reply RTTs in ms reported by the kernel's ``ping``."""
    process = await asyncio.create_subprocess_exec(
        "ping", "-c", str(count), "-i", str(interval), "-W", "1", target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 30 + count * interval * 2)
    return [float(m) for m in TIME.findall(output.decode())]


def make_veth_peer(peer: str) -> None:
    commands = [
        ["ip", "netns", "add", peer],
        ["ip", "link", "add", "aionsv0", "type", "veth", "peer", "name", "aionsv1"],
        ["ip", "link", "set", "aionsv1", "netns", peer],
        ["ip", "addr", "add", "198.18.1.1/24", "dev", "aionsv0"],
        ["ip", "link", "set", "aionsv0", "up"],
        ["ip", "netns", "exec", peer, "ip", "addr", "add", "198.18.1.2/24", "dev", "aionsv1"],
        ["ip", "netns", "exec", peer, "ip", "link", "set", "aionsv1", "up"],
        ["ip", "netns", "exec", peer, "ip", "link", "set", "lo", "up"],
    ]
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)


async def measure(count: int, rounds: int, interval: float) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"stack_over_tun": [], "kernel_over_veth": []}
    link = TunLink("aionsb0", kernel_address="198.18.0.1/24")
    async with Stack(link, address="198.18.0.2/24"):
        for number in range(rounds):
            print(f"round {number + 1}/{rounds} ...", file=sys.stderr, flush=True)
            results["stack_over_tun"] += await ping_rtts("198.18.0.2", count, interval)
            results["kernel_over_veth"] += await ping_rtts("198.18.1.2", count, interval)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="pings per round and target")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--interval", type=float, default=0.002, help="seconds between pings")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("ping_rtt: needs root (network namespaces and a TUN)", file=sys.stderr)
        return 2
    peer = f"aionsbench-peer-{os.getpid()}"
    with network_namespace("aionsbench"):
        try:
            make_veth_peer(peer)
            results = asyncio.run(measure(args.count, args.rounds, args.interval))
        finally:
            subprocess.run(["ip", "netns", "delete", peer], capture_output=True, check=False)
    stack, kernel = summary(results["stack_over_tun"]), summary(results["kernel_over_veth"])
    print(f"{'target':<28}{'median ms':>10}{'p99 ms':>10}{'min ms':>10}{'replies':>9}")
    for name, row in (("kernel -> stack (TUN)", stack), ("kernel -> kernel (veth)", kernel)):
        print(
            f"{name:<28}{row['median']:>10.3f}{row['p99']:>10.3f}{row['min']:>10.3f}{row['count']:>9}"
        )
    ratio = stack["median"] / kernel["median"]
    print(f"median ratio stack/kernel: {ratio:.2f}x")
    path = write_result("ping_rtt", {
        "stack_over_tun_ms": stack, "kernel_over_veth_ms": kernel, "median_ratio": ratio,
        "count": args.count, "rounds": args.rounds, "interval": args.interval,
    })  # fmt: skip
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
