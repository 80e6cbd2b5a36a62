"""The stack server's own counters per unit of work: packets and bytes read and written,
segments in and out (ACKs, on an upload), per 64 KiB or per transaction.

``sudo python benchmarks/counters.py [upload|download|rr|connrate] [N] [--congestion
bbr,cubic] [--runs 1] [--settle-allocator] [--code TREE]`` runs ``server.py`` (the
stack, pinned to CPU 1; ``--code``: another checkout's ``aionetstack``) and
``client.py`` (CPU 0) for 3 s per run in a network namespace it creates and deletes,
and prints the rate, the server's CPU per unit and every counter of
``Stack.statistics()`` that moved, divided by the units done.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import bench_server, run_client  # noqa: E402

from aionetstack.testing.netns import network_namespace  # noqa: E402

HOST = "198.18.0.2"
SECONDS = 3


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"tcp": {"segments_out": 5}}`` as ``{"tcp.segments_out": 5}``: numbers only."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[prefix + key] = value
    return flat


def one_run(mode: str, connections: int, congestion: str, server_args: list[str],
            code: str | None) -> None:  # fmt: skip
    env = {"BENCH_CODE": code} if code else {}
    with bench_server("stack", HOST, *server_args, env=env) as server:
        cpu_before, before = server.ask("cpu"), flatten(server.ask("stats"))
        answer = run_client(mode, HOST, SECONDS, connections,
                            {"BENCH_CPU": "0", "BENCH_CC": congestion})  # fmt: skip
        cpu_after, after = server.ask("cpu"), flatten(server.ask("stats"))
    bulk = mode in ("upload", "download")
    units = answer["total"] / 65536 if bulk else answer["total"]
    unit = "64 KiB" if bulk else "transaction"
    rate = f"{answer['gbit_s']:.4g} Gbit/s" if bulk else f"{answer['per_s']:,.0f}/s"
    user = (cpu_after["user"] - cpu_before["user"]) / units * 1e6
    system = (cpu_after["sys"] - cpu_before["sys"]) / units * 1e6
    print(f"{mode}, {connections} connection(s), {congestion}: {rate}; server CPU per "
          f"{unit}: {user:.1f} µs user, {system:.1f} µs system")  # fmt: skip
    for name in sorted(after):
        moved = after[name] - before.get(name, 0)
        if moved and "time" not in name:
            print(f"  {name}: {moved / units:,.3f} per {unit}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="upload",
                        choices=["upload", "download", "rr", "connrate"])  # fmt: skip
    parser.add_argument("connections", nargs="?", type=int, default=1)
    parser.add_argument("--congestion", default="bbr,cubic",
                        help="the client's congestion controls, comma-separated")  # fmt: skip
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--settle-allocator", action="store_true")
    parser.add_argument("--code", help="a checkout whose aionetstack the server imports")
    args = parser.parse_args()
    server_args = ["--settle-allocator"] if args.settle_allocator else []
    with network_namespace("aionscount"):
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        for _ in range(args.runs):
            for congestion in args.congestion.split(","):
                one_run(args.mode, args.connections, congestion, server_args, args.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
