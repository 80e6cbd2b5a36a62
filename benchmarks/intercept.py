"""Intercept proxy against the direct kernel path: relay throughput and flows per second.

``sudo python benchmarks/intercept.py [--runs 3] [--seconds 2] [--quick]``

Inside a network namespace this script creates (and deletes):

* kernel servers (blocking sockets, a thread per connection) bound to 0.0.0.0:
  a sink (reads and discards), a source (writes until the client closes) and a
  1-byte echo; the namespace's routing (``aionetstack.testing.kernel_servers``)
  makes every 198.19.x.y address local for packets marked 1;
* ``python -m aionetstack.proxy --direct --mark 1`` (pinned to CPU 1)
  intercepting 198.19.0.0/16 on a TUN, relaying to those servers;
* the same blocking-socket client (a subprocess pinned to CPU 0) dials
  198.19.1.1 twice: marked 1, it reaches the servers directly through the
  kernel ("direct"); unmarked, the route takes it into the TUN and through
  the proxy ("proxy").

Each figure is the median of ``--runs`` runs (min-max shown); the ratio is
proxy / direct. Writes ``results/intercept.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import write_result  # noqa: E402

from aionetstack.testing.kernel_servers import MARK, route_intercepted  # noqa: E402
from aionetstack.testing.netns import network_namespace  # noqa: E402

TARGET = "198.19.1.1"
TUN = "aionsb0"
BLOCK = bytes(range(256)) * 256  # 64 KiB writes
PROXY_CPU, CLIENT_CPU = 1, 0
SO_MARK = 36
#: Client threads of the flows scenario (BENCH_FLOW_THREADS).
THREADS = int(os.environ.get("BENCH_FLOW_THREADS", "4"))
#: (label, client mode, metric, unit)
SCENARIOS = [
    ("relay upload, 1 conn", "upload", "gbit_s", "Gbit/s"),
    ("relay download, 1 conn", "download", "gbit_s", "Gbit/s"),
    ("flows: connect+1-byte echo+close, 4 threads", "flows", "per_s", "flows/s"),
]


# -- the client (a subprocess): python intercept.py --client MODE PORT SECONDS MARK --------


def _connect(port: int, mark: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if mark:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
    sock.settimeout(30)
    sock.connect((TARGET, port))
    return sock


def client(mode: str, port: int, seconds: float, mark: int) -> dict[str, float]:
    """Run one measurement with blocking sockets; return its figure."""
    start = time.perf_counter()
    if mode == "upload":
        with _connect(port, mark) as sock:
            sent = 0
            end = start + seconds
            while time.perf_counter() < end:
                sock.sendall(BLOCK)
                sent += len(BLOCK)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)  # the sink closes once it has read everything
        return {"gbit_s": sent * 8 / (time.perf_counter() - start) / 1e9}
    if mode == "download":
        with _connect(port, mark) as sock:
            received = 0
            end = start + seconds
            while time.perf_counter() < end:
                received += len(sock.recv(1 << 20))
        return {"gbit_s": received * 8 / (time.perf_counter() - start) / 1e9}
    counts = [0] * THREADS

    def worker(index: int) -> None:
        end = start + seconds
        while time.perf_counter() < end:
            with _connect(port, mark) as sock:
                sock.sendall(b"x")
                assert sock.recv(1) == b"x"
            counts[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"per_s": sum(counts) / (time.perf_counter() - start)}


# -- kernel servers (threads in this process, inside the namespace) ---------------------


class Servers:
    """Sink, source and 1-byte echo on 0.0.0.0, a thread per connection."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.ports = {name: self._listen(serve) for name, serve in (
            ("upload", self._sink), ("download", self._source), ("flows", self._echo))}  # fmt: skip

    def _listen(self, serve: Any) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 0))
        listener.listen(4096)
        self.sockets.append(listener)

        def accept() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=serve, args=(connection,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        return int(listener.getsockname()[1])

    @staticmethod
    def _sink(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while connection.recv(1 << 20):
                pass

    @staticmethod
    def _source(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while True:
                connection.sendall(BLOCK)

    @staticmethod
    def _echo(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while data := connection.recv(1024):
                connection.sendall(data)

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() else []


def run_client(mode: str, port: int, seconds: float, mark: int) -> float:
    out = subprocess.run(
        [*_pinned(CLIENT_CPU), sys.executable, __file__, "--client", mode, str(port),
         str(seconds), str(mark)],
        capture_output=True, text=True, check=True, timeout=seconds * 10 + 60,
    )  # fmt: skip
    return float(next(iter(json.loads(out.stdout).values())))


def start_proxy() -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*_pinned(PROXY_CPU), sys.executable, "-m", "aionetstack.proxy", "--tun", TUN,
         "--networks", "198.19.0.0/16", "--direct", "--mark", str(MARK), "--route",
         "--no-udp", "--stats-interval", "0"],
        stderr=subprocess.PIPE, text=True, cwd=HERE.parent,
    )  # fmt: skip
    assert process.stderr is not None
    line = process.stderr.readline()
    if "intercepting" not in line:
        process.kill()
        raise RuntimeError(f"the proxy did not start: {line!r}")
    return process


def measure(runs: int, seconds: float) -> dict[str, Any]:
    with network_namespace("aionsbench"):
        route_intercepted(tun=None)
        servers = Servers()
        proxy = start_proxy()
        try:
            results: dict[str, Any] = {}
            for label, mode, metric, unit in SCENARIOS:
                figures: dict[str, list[float]] = {"direct": [], "proxy": []}
                for _ in range(runs):
                    figures["direct"].append(run_client(mode, servers.ports[mode], seconds, MARK))
                    figures["proxy"].append(run_client(mode, servers.ports[mode], seconds, 0))
                row = {
                    path: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                    for path, v in figures.items()
                }
                row["ratio"] = row["proxy"]["median"] / row["direct"]["median"]
                row["metric"], row["unit"] = metric, unit
                results[label] = row
        finally:
            proxy.terminate()
            _, err = proxy.communicate(timeout=30)
            servers.close()
        results["proxy_final_statistics"] = err.strip().splitlines()[-1:] if err else []
        return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{'scenario':46} {'direct':>18} {'proxy':>18} {'ratio':>7}"]
    for label, row in results.items():
        if not isinstance(row, dict):
            continue

        def cell(figure: dict[str, float], unit: str = row["unit"]) -> str:
            return f"{figure['median']:.2f} {unit}"

        lines.append(
            f"{label:46} {cell(row['direct']):>18} {cell(row['proxy']):>18} {row['ratio']:7.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        mode, port, seconds, mark = (
            sys.argv[2],
            int(sys.argv[3]),
            float(sys.argv[4]),
            int(sys.argv[5]),
        )
        print(json.dumps(client(mode, port, seconds, mark)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="1 run of 0.3 s (a smoke test)")
    args = parser.parse_args()
    runs, seconds = (1, 0.3) if args.quick else (args.runs, args.seconds)
    results = measure(runs, seconds)
    print(table(results))
    if not args.quick:
        path = write_result("intercept", {"runs": runs, "seconds": seconds, "results": results})
        print(f"written: {path}")


if __name__ == "__main__":
    main()
