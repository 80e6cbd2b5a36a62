"""The kernel-side client of the benchmarks: blocking sockets, one thread per connection.

``python client.py MODE HOST SECONDS CONNECTIONS [--congestion cubic]`` prints one
JSON object (the rate, the client's own CPU seconds, the wall time). DESIGN.md §6:
the kernel-side program must not be the bottleneck, so it does nothing but the
system calls of its workload, with the GIL released during each of them:

* ``upload``   (port 5001): ``sendall`` 64 KiB blocks until SECONDS pass, then
  ``shutdown(SHUT_WR)`` and wait for the server's close (bytes counted as delivered);
* ``download`` (port 5002): ``recv_into`` a 256 KiB buffer until SECONDS pass;
* ``rr``       (port 5003): 1 byte each way with ``TCP_NODELAY``, one transaction at a time;
* ``connrate`` (port 5003): connect, 1 byte each way, close, repeated;
* ``idle``     (port 5003): open CONNECTIONS connections from one thread, print
  ``{"opened": N}``, hold them until stdin closes.

The CPU to pin to comes from ``BENCH_CPU``; ``--congestion`` (or ``BENCH_CC``)
sets ``TCP_CONGESTION`` on every socket.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable

BLOCK = bytes(range(256)) * 256  # 64 KiB
RECEIVE = 256 * 1024
PORTS = {"upload": 5001, "download": 5002, "rr": 5003, "connrate": 5003, "idle": 5003}


class Client:
    """One workload over ``connections`` threads, each with its own socket."""

    def __init__(self, host: str, port: int, congestion: str | None) -> None:
        self.host = host
        self.port = port
        self.congestion = congestion.encode() if congestion else None

    def connect(self, nodelay: bool = False) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.congestion is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, self.congestion)
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((self.host, self.port))
        return sock

    def upload(self, end: float) -> int:
        sock = self.connect()
        sent = 0
        sendall = sock.sendall
        while time.perf_counter() < end:
            sendall(BLOCK)
            sent += len(BLOCK)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):  # the sink closes once it has read everything
            pass
        sock.close()
        return sent

    def download(self, end: float) -> int:
        sock = self.connect()
        buffer = bytearray(RECEIVE)
        received = 0
        recv_into = sock.recv_into
        perf_counter = time.perf_counter
        while perf_counter() < end:
            size = recv_into(buffer)
            if not size:
                break
            received += size
        sock.close()  # with data unread: the server may see a reset, which ends its writer
        return received

    def request_response(self, end: float) -> int:
        sock = self.connect(nodelay=True)
        send, recv = sock.send, sock.recv
        perf_counter = time.perf_counter
        count = 0
        while perf_counter() < end:
            for _ in range(16):  # check the clock every 16 transactions
                send(b"x")
                if not recv(1):
                    raise ConnectionError("the echo server closed the connection")
            count += 16
        sock.close()
        return count

    def connection_rate(self, end: float) -> int:
        count = 0
        while time.perf_counter() < end:
            sock = self.connect(nodelay=True)
            sock.send(b"x")
            if not sock.recv(1):
                raise ConnectionError("the echo server closed the connection")
            sock.close()
            count += 1
        return count


def run_threads(work: Callable[[float], int], seconds: float, connections: int) -> dict[str, float]:
    """Start ``connections`` threads together; the amount each did and the elapsed time."""
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(connections + 1)
    start_end: list[float] = []

    def thread() -> None:
        try:
            barrier.wait(60)
            results.append(work(start_end[0]))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=thread, daemon=True) for _ in range(connections)]
    for each in threads:
        each.start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    start_end.append(start + seconds)
    barrier.wait(60)
    for each in threads:
        each.join(seconds + 120)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    if errors:
        raise errors[0]
    if len(results) != connections:
        raise RuntimeError(f"only {len(results)} of {connections} connections finished")
    return {
        "total": float(sum(results)),
        "elapsed": elapsed,
        "client_user": after.ru_utime - usage.ru_utime,
        "client_sys": after.ru_stime - usage.ru_stime,
    }


def idle(client: Client, connections: int) -> dict[str, float]:
    held = [client.connect() for _ in range(connections)]
    print(json.dumps({"opened": len(held)}), flush=True)
    sys.stdin.read()
    for sock in held:
        sock.close()
    return {"held": float(len(held))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=sorted(PORTS))
    parser.add_argument("host")
    parser.add_argument("seconds", type=float)
    parser.add_argument("connections", type=int, nargs="?", default=1)
    parser.add_argument("--congestion", default=os.environ.get("BENCH_CC"))
    args = parser.parse_args()
    cpu = os.environ.get("BENCH_CPU")
    if cpu is not None:
        os.sched_setaffinity(0, {int(cpu)})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    client = Client(args.host, PORTS[args.mode], args.congestion)
    if args.mode == "idle":
        print(json.dumps(idle(client, args.connections)), flush=True)
        return
    work = {
        "upload": client.upload,
        "download": client.download,
        "rr": client.request_response,
        "connrate": client.connection_rate,
    }[args.mode]
    result = run_threads(work, args.seconds, args.connections)
    if args.mode in ("upload", "download"):
        result["gbit_s"] = result["total"] * 8 / result["elapsed"] / 1e9
    else:
        result["per_s"] = result["total"] / result["elapsed"]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
