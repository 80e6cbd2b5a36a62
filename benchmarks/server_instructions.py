"""Instructions the stack server executes per unit of work (valgrind/callgrind), a cost
measure that does not depend on the machine's load.

``sudo python benchmarks/server_instructions.py [--mode rr] [--connections 1]
[--seconds 20] [TREE ...]``

For each TREE (a checkout holding ``aionetstack/``; default: this one), in a network
namespace of its own, starts ``server.py stack`` under callgrind with instrumentation
off, switches it on once the server is listening, runs the blocking client
(``client.py``: rr, upload, download or connrate) against it, switches it off and
divides the instructions (Ir) by the transactions (or 64 KiB) the client completed.
The server runs about 50 times slower under valgrind, so the client's side is never
the limit; the batching of packets per wake-up may differ from a native run. Trees
are measured in turn, twice each, alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from aionetstack.testing.netns import network_namespace  # noqa: E402

HOST = "198.18.0.2"


def measure(
    tree: Path, mode: str, connections: int, seconds: float, keep: Path | None = None
) -> tuple[float, float]:
    """(Ir per unit, units) for one run of ``tree``'s stack server; ``keep``: a path to
    write the callgrind profile to (for ``callgrind_annotate``)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        server = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, str(HERE / "server.py"), "stack",
             HOST, "--cpu", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "BENCH_CODE": str(tree), "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        assert server.stdin is not None and server.stdout is not None
        try:
            line = server.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"the server did not start: {line!r}")
            control = ["callgrind_control", "-i"]
            subprocess.run([*control, "on", str(server.pid)], check=True, capture_output=True)
            client = subprocess.run(
                [sys.executable, str(HERE / "client.py"), mode, HOST, str(seconds),
                 str(connections)],
                capture_output=True, text=True, check=True, timeout=seconds + 300,
                env={**os.environ, "BENCH_CPU": "0"},
            )  # fmt: skip
            subprocess.run([*control, "off", str(server.pid)], check=True, capture_output=True)
            answer = json.loads(client.stdout.strip().splitlines()[-1])
            if os.environ.get("INSTR_STATS"):
                server.stdin.write("stats\n")
                server.stdin.flush()
                print(server.stdout.readline().strip())
        finally:
            server.stdin.close()
            server.wait(timeout=120)
        time.sleep(0.2)
        text = "".join(p.read_text() for p in Path(scratch).glob("callgrind.out*"))
        if keep is not None:
            keep.write_text(text)
    total = sum(int(m) for m in re.findall(r"^totals: (\d+)", text, re.M))
    units = answer["total"] / 65536 if mode in ("upload", "download") else answer["total"]
    return total / units, units


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path, default=[HERE.parent])
    parser.add_argument("--mode", choices=["rr", "upload", "download", "connrate"], default="rr")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the last run's callgrind profile here")
    args = parser.parse_args()
    unit = "64 KiB" if args.mode in ("upload", "download") else "transaction"
    results: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    with network_namespace("aionsinstr"):
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        # The server runs ~50x slower under valgrind: the kernel client's tail loss probes
        # (PTO = 2 SRTT, from 10 ms) would fire and add duplicates to the measured work.
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_early_retrans=0"], check=True)
        for _ in range(args.rounds):
            for tree in args.trees:
                per_unit, units = measure(tree.resolve(), args.mode, args.connections,
                                          args.seconds, args.keep)  # fmt: skip
                results[tree].append(per_unit)
                print(f"{tree}: {per_unit:,.0f} instructions per {unit} ({units:.0f} {unit}s)",
                      flush=True)  # fmt: skip
    for tree, values in results.items():
        print(f"{tree}: {args.mode} x{args.connections}: median "
              f"{sorted(values)[len(values) // 2]:,.0f} instructions per {unit}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
