"""One entry point for the side-by-side benchmarks (issue: performance).

``sudo python benchmarks/run.py [--runs 5] [--seconds 2] [--quick]``

Inside a network namespace this script creates (and deletes), the same
kernel-side client (``peer.py``, pinned to CPU 0) talks to the same handlers
(``server.py``, pinned to CPU 1) served by:

* ``asyncio``: asyncio over the kernel's sockets on 127.0.0.1 (what users would pick);
* ``stack``: aionetstack over a TUN (kernel side 198.18.0.1, stack 198.18.0.2);
* ``stack+offload``: the same with TUN offloads negotiated.

Each figure is the median of ``--runs`` runs, with min-max; the ratio is
stack / asyncio. Also measured: stack to stack over a memory link (no kernel),
and memory per idle connection. Prints a table, writes ``results/bench.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import machine, write_result  # noqa: E402

from aionetstack.testing.netns import network_namespace  # noqa: E402

SERVER_CPU, PEER_CPU = 1, 0
BACKENDS = {
    "asyncio": ("kernel", "127.0.0.1", []),
    "stack": ("stack", "198.18.0.2", ["--no-offload"]),
    "stack+offload": ("stack", "198.18.0.2", ["--offload"]),
}
#: (label, peer mode, connections, metric, unit)
SCENARIOS = [
    ("bulk upload, 1 conn", "upload", 1, "gbit_s", "Gbit/s"),
    ("bulk download, 1 conn", "download", 1, "gbit_s", "Gbit/s"),
    ("bulk upload, 10 conns", "upload", 10, "gbit_s", "Gbit/s"),
    ("bulk upload, 100 conns", "upload", 100, "gbit_s", "Gbit/s"),
    ("bulk download, 10 conns", "download", 10, "gbit_s", "Gbit/s"),
    ("bulk download, 100 conns", "download", 100, "gbit_s", "Gbit/s"),
    ("1-byte echo, 1 conn", "rr", 1, "per_s", "trans/s"),
    ("1-byte echo, 100 conns", "rr", 100, "per_s", "trans/s"),
    ("connect+request+close", "connrate", 10, "per_s", "conn/s"),
    ("UDP echo", "udp", 1, "per_s", "dgram/s"),
]


class Server:
    """A ``server.py`` subprocess for one backend."""

    def __init__(self, backend: str, host: str, extra: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "server.py"), backend, host,
             "--cpu", str(SERVER_CPU), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"server {backend} did not start: {line!r}")

    def rss_kib(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("rss\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


#: Extra environment for every peer (``--congestion`` sets BENCH_CC).
PEER_ENV: dict[str, str] = {}


def run_peer(mode: str, host: str, seconds: float, connections: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, str(HERE / "peer.py"), mode, host, str(seconds), str(connections)],
        capture_output=True, text=True, timeout=seconds + 180,
        env={**os.environ, **PEER_ENV, "BENCH_CPU": str(PEER_CPU)}, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"peer {mode} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def idle_memory(server: Server, host: str, connections: int) -> float:
    """KiB of server RSS per idle established connection."""
    before = server.rss_kib()
    peer = subprocess.Popen(
        [sys.executable, str(HERE / "peer.py"), "idle", host, "0", str(connections)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, **PEER_ENV, "BENCH_CPU": str(PEER_CPU)},
    )  # fmt: skip
    assert peer.stdout is not None and peer.stdin is not None
    opened = json.loads(peer.stdout.readline())["opened"]
    time.sleep(0.5)  # let the last handshakes' handlers start (measurement, not synchronisation)
    after = server.rss_kib()
    peer.stdin.close()
    peer.wait(timeout=120)
    return (after - before) / opened


def progress(text: str) -> None:
    print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)


def measure_backend(
    name: str, runs: int, seconds: float, idle: int, only: str | None = None
) -> dict[str, Any]:
    backend, host, extra = BACKENDS[name]
    results: dict[str, Any] = {}
    if idle:
        # A fresh server for each measurement: earlier bulk runs leave freed memory behind.
        values = []
        for number in range(min(runs, 3)):
            progress(f"{name}: {idle} idle connections, run {number + 1}")
            server = Server(backend, host, extra)
            try:
                values.append(idle_memory(server, host, idle))
            finally:
                server.stop()
        results[f"memory per idle conn ({idle})"] = {"values": values, "unit": "KiB"}
    server = Server(backend, host, extra)
    try:
        for label, mode, connections, metric, unit in SCENARIOS:
            if only is not None and only not in label:
                continue
            values = []
            for number in range(runs):
                progress(f"{name}: {label} run {number + 1}/{runs}")
                values.append(run_peer(mode, host, seconds, connections)[metric])
            results[label] = {"values": values, "unit": unit}
    finally:
        server.stop()
    return results


def memory_link_figures(runs: int, seconds: float) -> dict[str, Any]:
    """Stack to stack over a memory link in one process: no kernel involved."""
    from memory_link import bulk, transactions

    bulk_values = [asyncio.run(bulk(seconds)) for _ in range(runs)]
    rr_values = [asyncio.run(transactions(seconds)) for _ in range(runs)]
    return {
        "memory link bulk": {"values": bulk_values, "unit": "Gbit/s"},
        "memory link 1-byte echo": {"values": rr_values, "unit": "trans/s"},
    }


def table(all_results: dict[str, dict[str, Any]]) -> str:
    names = list(all_results)
    labels: list[str] = []
    for results in all_results.values():
        labels += [label for label in results if label not in labels]
    head = f"{'scenario':<34}" + "".join(f"{n:>24}" for n in names) + "   ratio stack/asyncio"
    lines = [head, "-" * len(head)]
    for label in labels:
        cells, medians = [], {}
        for name in names:
            entry = all_results[name].get(label)
            if entry is None:
                cells.append(f"{'-':>24}")
                continue
            values = entry["values"]
            median = statistics.median(values)
            medians[name] = median
            spread = f"({min(values):.3g}-{max(values):.3g})" if len(values) > 1 else ""
            cells.append(f"{median:>11.4g} {spread:>12}")
        ratios = [
            f"{medians[n] / medians['asyncio']:.2f}x"
            for n in names if n != "asyncio" and n in medians and medians.get("asyncio")
        ]  # fmt: skip
        unit = next(all_results[n][label]["unit"] for n in names if label in all_results[n])
        name = f"{label} [{unit}]"
        lines.append(f"{name:<34}" + "".join(cells) + "   " + " / ".join(ratios))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="aionetstack vs asyncio over the kernel")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--idle", type=int, default=10000, help="idle connections (0 = skip)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--quick", action="store_true", help="1 run of 1 s, 1000 idle conns")
    parser.add_argument("--only", help="run only the scenarios whose label contains this text")
    parser.add_argument("--congestion", help="the kernel client's congestion control "
                        "(TCP_CONGESTION, e.g. cubic); default: the system's")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds, args.idle = 1, 1.0, 1000
    if args.congestion:
        PEER_ENV["BENCH_CC"] = args.congestion
    if os.geteuid() != 0:
        print("run.py: needs root for the network namespace and the TUN", file=sys.stderr)
        return 2
    all_results: dict[str, dict[str, Any]] = {}
    with network_namespace("aionsbench"):
        # The kernel client reuses TIME-WAIT ports for every destination, not only for
        # loopback (Linux's default 2), so the connection-rate runs measure the servers.
        subprocess.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"], check=True)
        for name in args.backends.split(","):
            all_results[name] = measure_backend(name, args.runs, args.seconds, args.idle, args.only)
    if args.only is None or "memory link" in args.only:
        progress("stack to stack over a memory link")
        all_results.setdefault("stack", {}).update(memory_link_figures(args.runs, args.seconds))
    progress("")
    print(table(all_results))
    data = {"runs": args.runs, "seconds": args.seconds, "results": all_results}
    if args.only is not None:  # a partial run does not replace the published figures
        return 0
    path = write_result("bench", data)
    print(f"\nmachine: {machine()}\nwritten {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
