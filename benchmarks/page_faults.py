"""Page faults and heap resizes of one benchmark server while the kernel client runs.

``sudo python benchmarks/page_faults.py [upload|download|rr|connrate] [N] [--backend
kernel|stack] [--settle-allocator] [--runs 3]`` runs ``server.py`` (pinned to CPU 1)
and ``client.py`` (CPU 0) for 3 s per run in a network namespace it creates and
deletes, with ``perf stat`` counting the server's page faults and ``brk``/``mmap``/
``munmap`` system calls. It shows whether glibc's heap trimming decides a run (see
"allocator settled" in docs/performance.md): counts and the client's rate, per run.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import HOSTS, bench_server, run_client  # noqa: E402

from aionetstack.testing.netns import network_namespace  # noqa: E402

EVENTS = (
    "page-faults",
    "syscalls:sys_enter_brk",
    "syscalls:sys_enter_mmap",
    "syscalls:sys_enter_munmap",
)


def one_run(mode: str, connections: int, backend: str, settle: bool) -> dict[str, float]:
    """The client's answer and the server's event counts for one 3-second run."""
    host = HOSTS[backend]
    extra = ["--settle-allocator"] if settle else []
    with bench_server(backend, host, *extra) as server:
        counter = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", ",".join(EVENTS), "-p", str(server.process.pid)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        answer = run_client(mode, host, 3, connections, {"BENCH_CPU": "0"})
        counter.send_signal(signal.SIGINT)
        _, report = counter.communicate(timeout=30)
    result = {"rate": answer.get("gbit_s") or answer.get("per_s") or 0.0}
    for line in report.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2] in EVENTS and fields[0].isdigit():
            result[fields[2].rsplit(":", 1)[-1]] = float(fields[0])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="upload",
                        choices=["upload", "download", "rr", "connrate"])  # fmt: skip
    parser.add_argument("connections", nargs="?", type=int, default=1)
    parser.add_argument("--backend", choices=sorted(HOSTS), default="stack")
    parser.add_argument("--settle-allocator", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("perf") is None:
        print("page_faults.py: needs perf (Debian: apt-get install linux-perf)", file=sys.stderr)
        return 2
    with network_namespace("aionsfaults"):
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        for run in range(1, args.runs + 1):
            result = one_run(args.mode, args.connections, args.backend, args.settle_allocator)
            counts = "  ".join(f"{name} {value:,.0f}" for name, value in result.items()
                               if name != "rate")  # fmt: skip
            unit = "Gbit/s" if args.mode in ("upload", "download") else "/s"
            print(f"run {run}: {result['rate']:.4g} {unit}  {counts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
