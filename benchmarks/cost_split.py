"""Where each server's CPU goes per unit of work, side by side: the stack against asyncio.

``sudo python benchmarks/cost_split.py MODE CONNECTIONS [--congestion bbr] [--seconds 3]
[--settle-allocator]``

In a network namespace it creates (and deletes), runs ``server.py`` on each backend
in turn (asyncio over the kernel's sockets, then the stack over its TUN; pinned to
CPU 1) under ``perf record`` with DWARF call graphs, and the blocking client
(``client.py``, CPU 0) for MODE. Every sample is one fixed slice of the server's CPU
time (``cpu-clock``, :data:`SAMPLE_NS`), so a part's samples, divided by the units
done, are its µs per 64 KiB (bulk modes) or per transaction.

A sample belongs to the part of its innermost frame that names one
(:data:`PARTS`); a sample taken in a timer interrupt belongs to "interrupts",
whatever it interrupted (the kernel runs paced senders' transmissions there).
Frames are C symbols: the stack's compiled modules (mypyc's ``CPyDef_`` functions),
CPython's and the kernel's. Python-level asyncio code is not told apart; it is in
"the rest" with the loop itself.

Needs ``perf`` (Debian: ``apt-get install linux-perf``). Not run by the tests.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import HOSTS, bench_server, run_client  # noqa: E402

from aionetstack.testing.netns import network_namespace  # noqa: E402

#: One sample per this much of the server's CPU time (a fixed ``cpu-clock`` period).
SAMPLE_NS = 250_000
#: Frames that mark a sample taken in an interrupt (its handler's softirqs included).
INTERRUPT_FRAMES = frozenset({
    "asm_sysvec_apic_timer_interrupt", "asm_common_interrupt",
    "asm_sysvec_call_function_single", "asm_sysvec_reschedule_ipi",
})  # fmt: skip
#: Parts by the C symbol of a frame; a sample goes to its innermost named frame.
PARTS: dict[str, str] = {
    # the stack's device I/O (link/tun_path.py)
    "CPyDef_tun_path___TunPath___receive_batch": "device reads",
    "CPyDef_tun_path___TunPath___send_offloaded": "device writes",
    "CPyDef_tun_path___TunPath___send": "device writes",
    # the stack's IP and TCP (core/pump.py feeds the core a batch, GRO included)
    "CPyDef_pump___Pump___receive": "IP and TCP input",
    "CPyDef_pump___Pump____process": "TCP output and events",
    # the stack's transport handing received bytes to the protocol (aio/transport.py)
    "CPyDef_transport___on_tcp_readable": "delivery to the protocol",
    # the kernel backend: recv (the ACKs it sends and the softirq work they start)
    "sock_recv": "socket recv (with the ACKs it sends)",
    "__GI_epoll_ctl": "epoll_ctl (pause and resume reading)",
    "epoll_ctl": "epoll_ctl (pause and resume reading)",
    # both: the handler's task (StreamReader.read and its copies) and the wait
    "task_step": "the reader task (StreamReader.read)",
    "select_epoll_poll": "epoll_wait",
}
INTERRUPTS = "interrupts (timers, softirq)"
REST = "the rest (the loop, asyncio's callbacks)"


def samples_by_part(script: Iterable[str]) -> collections.Counter[str]:
    """Count ``perf script`` samples (header line, then one frame per line, leaf first,
    a blank line after each) by part."""
    parts: collections.Counter[str] = collections.Counter()
    frames: list[str] = []
    for line in [*script, ""]:
        fields = line.split()
        if fields and not line[0].isspace():
            frames = []  # a sample's header line
        elif len(fields) >= 2:
            frames.append(fields[1])
        elif frames:
            parts[part_of(frames)] += 1
            frames = []
    return parts


def part_of(frames: list[str]) -> str:
    """The part of one sample whose frames are ``frames``, leaf first."""
    if INTERRUPT_FRAMES.intersection(frames):
        return INTERRUPTS
    for frame in frames:
        part = PARTS.get(frame)
        if part is not None:
            return part
    return REST


def measure(backend: str, args: argparse.Namespace, scratch: Path,
            ) -> tuple[dict[str, float], collections.Counter[str]]:  # fmt: skip
    """One client run (``args``: the command line's) against one server under
    ``perf record``: the client's answer and the server's samples by part."""
    data = scratch / f"{backend}.data"
    host = HOSTS[backend]
    seconds = args.seconds
    server_args = ["--settle-allocator"] if args.settle_allocator else []
    with bench_server(backend, host, *server_args) as server:
        recorder = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-c", str(SAMPLE_NS),
             "--call-graph", "dwarf,8192", "-o", str(data), "-p", str(server.process.pid),
             "--", "sleep", str(seconds + 0.5)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)  # attached before the client starts
        env = {"BENCH_CPU": "0", **({"BENCH_CC": args.congestion} if args.congestion else {})}
        answer = run_client(args.mode, host, seconds, args.connections, env)
        recorder.wait(timeout=seconds + 60)
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "comm,ip,sym"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return answer, samples_by_part(script.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["upload", "download", "rr", "connrate"])
    parser.add_argument("connections", type=int)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--congestion", help="the client's TCP_CONGESTION (default: the system's)")
    parser.add_argument("--settle-allocator", action="store_true",
                        help="each server frees one 4 MiB block first (server.py)")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("perf") is None:
        parser.error("perf is not installed (Debian: apt-get install linux-perf)")
    bulk = args.mode in ("upload", "download")
    unit = "64 KiB" if bulk else "transaction"
    columns: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch, network_namespace("aionsplit"):
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        for backend in HOSTS:
            answer, parts = measure(backend, args, Path(scratch))
            units = answer["total"] / 65536 if bulk else answer["total"]
            per_unit = {part: count * SAMPLE_NS / 1000 / units for part, count in parts.items()}
            rate = f"{answer['gbit_s']:.4g} Gbit/s" if bulk else f"{answer['per_s']:,.0f}/s"
            print(f"{backend}: {rate}, {sum(per_unit.values()):.1f} µs of CPU per {unit}")
            columns[backend] = per_unit
    names = list(dict.fromkeys([*PARTS.values(), INTERRUPTS, REST]))
    print(f"\nµs per {unit} | asyncio | stack | difference")
    for name in names:
        kernel, stack = columns["kernel"].get(name, 0.0), columns["stack"].get(name, 0.0)
        if kernel or stack:
            print(f"{name} | {kernel:.1f} | {stack:.1f} | {stack - kernel:+.1f}")
    kernel, stack = (sum(columns[backend].values()) for backend in ("kernel", "stack"))
    print(f"total | {kernel:.1f} | {stack:.1f} | {stack - kernel:+.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
