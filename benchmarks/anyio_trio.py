"""anyio on trio over the stack, against trio over the kernel's sockets (issue 13).

``sudo python benchmarks/anyio_trio.py [--runs 5] [--seconds 2]``

Inside a network namespace this script creates (and deletes), one kernel-side
client (blocking sockets, one thread per connection, pinned to CPU 0) talks to
servers pinned to CPU 1:

* ``trio/kernel``: plain trio (``trio.serve_tcp``) on the kernel's sockets over
  loopback: what a trio user would run without aionetstack;
* ``anyio-trio/stack``: the same handlers written against anyio's interfaces, on
  trio, served by ``AnyioStack.create_tcp_listener`` over a TUN (``offload=True``);
* ``trio/stack``: the plain-trio handlers again, unmodified, under
  ``stack.as_trio_network()`` over the TUN;
* ``threads/kernel``: a blocking-thread server of the client's own kind over
  loopback: the client's headroom (it must beat every other row, or the ratio
  measures the client).

Runs alternate between the servers (run 1 of each, then run 2 of each, ...) so
that drift on the machine hits all of them alike; each figure is the median of
``--runs`` runs with min-max, and the ratio is stack / trio-on-kernel.
Writes ``results/anyio_trio.json``.
"""

from __future__ import annotations

import argparse
import json
import os
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

from _common import machine, write_result  # noqa: E402

SERVER_CPU, CLIENT_CPU = 1, 0
KERNEL, STACK = "198.18.0.1", "198.18.0.2"
LOOPBACK = "127.0.0.1"
SINK, SOURCE, ECHO = 5001, 5002, 5003
BLOCK = bytes(range(256)) * 256  # 64 KiB writes
#: server name -> host the client dials
SERVERS = {
    "trio/kernel": LOOPBACK,
    "anyio-trio/stack": STACK,
    "trio/stack": STACK,
    "threads/kernel": LOOPBACK,
}
#: (label, client mode, connections, unit)
SCENARIOS = [
    ("bulk upload, 1 conn", "upload", 1, "Gbit/s"),
    ("bulk download, 1 conn", "download", 1, "Gbit/s"),
    ("bulk upload, 10 conns", "upload", 10, "Gbit/s"),
    ("1-byte echo, 1 conn", "rr", 1, "trans/s"),
    ("1-byte echo, 10 conns", "rr", 10, "trans/s"),
]
BASELINE = "trio/kernel"


# -- servers (run as ``--serve NAME`` subprocesses) ----------------------------------------


def serve(name: str) -> None:
    os.sched_setaffinity(0, {SERVER_CPU})
    if name == "threads/kernel":
        serve_threads()
        return
    import trio

    trio.run(serve_trio if name != "anyio-trio/stack" else serve_anyio, name)


def ready_then_wait_for_stdin_close() -> None:
    print("ready", flush=True)
    sys.stdin.read()  # the parent closes stdin to stop us


async def serve_trio(name: str) -> None:
    """Plain trio handlers; on the stack when ``name`` says so (unmodified code)."""
    import contextlib

    import trio

    async def sink(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some(1 << 20):
                pass

    async def source(stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                while True:
                    await stream.send_all(BLOCK)

    async def echo(stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                while data := await stream.receive_some(65536):
                    await stream.send_all(data)

    async with contextlib.AsyncExitStack() as stack_context:
        host = LOOPBACK
        if name == "trio/stack":
            stack = await stack_context.enter_async_context(open_stack())
            stack_context.enter_context(stack.as_trio_network())
            host = STACK
        async with trio.open_nursery() as nursery:
            for handler, port in ((sink, SINK), (source, SOURCE), (echo, ECHO)):
                await nursery.start(lambda h=handler, p=port, **kw: trio.serve_tcp(
                    h, p, host=host, **kw))  # fmt: skip
            await trio.to_thread.run_sync(ready_then_wait_for_stdin_close)
            nursery.cancel_scope.cancel()


async def serve_anyio(name: str) -> None:
    """The same handlers against anyio's interfaces, served by the stack's anyio faces."""
    import anyio
    import anyio.abc

    async def sink(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.receive(1 << 20)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async def source(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(BLOCK)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    async def echo(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                while True:
                    await stream.send(await stream.receive(65536))
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass

    async with open_stack() as stack, anyio.create_task_group() as group:
        for handler, port in ((sink, SINK), (source, SOURCE), (echo, ECHO)):
            listener = await stack.create_tcp_listener(local_host=STACK, local_port=port)
            group.start_soon(listener.serve, handler, group)
        await anyio.to_thread.run_sync(ready_then_wait_for_stdin_close)
        group.cancel_scope.cancel()


def open_stack() -> Any:
    from aionetstack import TunLink
    from aionetstack.anyio import AnyioStack

    # Offloads on (64 KB segments each way, checksums left to the kernel): the
    # configuration run.py calls "stack+offload", the one to use for throughput.
    link = TunLink("aionsbt0", kernel_address=f"{KERNEL}/24", offload=True)
    return AnyioStack(link, address=f"{STACK}/24")


def serve_threads() -> None:
    """The client's own kind, as a server: blocking sockets, a thread per connection."""

    def sink(connection: socket.socket) -> None:
        buffer = bytearray(1 << 20)
        while connection.recv_into(buffer):
            pass

    def source(connection: socket.socket) -> None:
        try:
            while True:
                connection.sendall(BLOCK)
        except OSError:
            pass

    def echo(connection: socket.socket) -> None:
        while data := connection.recv(65536):
            connection.sendall(data)

    def accept_loop(listener: socket.socket, handler: Any) -> None:
        while True:
            connection, _ = listener.accept()
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def run(c: socket.socket = connection) -> None:
                with c:
                    handler(c)

            threading.Thread(target=run, daemon=True).start()

    for handler, port in ((sink, SINK), (source, SOURCE), (echo, ECHO)):
        listener = socket.create_server((LOOPBACK, port), reuse_port=False)
        threading.Thread(target=accept_loop, args=(listener, handler), daemon=True).start()
    ready_then_wait_for_stdin_close()


# -- the client (run as ``--client MODE HOST SECONDS CONNECTIONS``) --------------------------


def client(mode: str, host: str, seconds: float, connections: int) -> dict[str, float]:
    """Blocking sockets, one thread per connection; returns the aggregate rate."""
    os.sched_setaffinity(0, {CLIENT_CPU})
    totals = [0] * connections
    start_line = threading.Barrier(connections + 1)

    def connect(port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=seconds + 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def upload(index: int) -> None:
        with connect(SINK) as sock:
            start_line.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                sock.sendall(BLOCK)
                totals[index] += len(BLOCK)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass

    def download(index: int) -> None:
        buffer = bytearray(1 << 20)
        with connect(SOURCE) as sock:
            start_line.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                totals[index] += sock.recv_into(buffer)

    def rr(index: int) -> None:
        with connect(ECHO) as sock:
            start_line.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                for _ in range(100):
                    sock.sendall(b"x")
                    if sock.recv(1) != b"x":
                        raise RuntimeError("echo lost")
                totals[index] += 100

    target = {"upload": upload, "download": download, "rr": rr}[mode]
    threads = [threading.Thread(target=target, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    start_line.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = sum(totals)
    if mode == "rr":
        return {"value": total / elapsed}
    return {"value": total * 8 / elapsed / 1e9}


# -- orchestration ------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"server {name} did not start: {line!r}")

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_client(mode: str, host: str, seconds: float, connections: int) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--client", mode, host, str(seconds), str(connections)],
        capture_output=True, text=True, timeout=seconds + 120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"client {mode} {host} failed: {result.stderr.strip()[-500:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["value"])


def measure(names: list[str], runs: int, seconds: float) -> dict[str, dict[str, Any]]:
    """Alternating runs: for each run, every server in turn (a fresh server process)."""
    results: dict[str, dict[str, Any]] = {
        name: {label: {"values": [], "unit": unit} for label, _, _, unit in SCENARIOS}
        for name in names
    }
    for number in range(runs):
        for name in names:
            print(f"\r\033[Krun {number + 1}/{runs}: {name}", end="", file=sys.stderr, flush=True)
            server = Server(name)
            try:
                for label, mode, connections, _ in SCENARIOS:
                    value = run_client(mode, SERVERS[name], seconds, connections)
                    results[name][label]["values"].append(value)
            finally:
                server.stop()
    print("\r\033[K", end="", file=sys.stderr)
    return results


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    head = f"{'scenario':<30}" + "".join(f"{n:>24}" for n in names) + "   ratio stack/trio-kernel"
    lines = [head, "-" * len(head)]
    for label, _, _, unit in SCENARIOS:
        medians: dict[str, float] = {}
        cells = []
        for name in names:
            values = results[name][label]["values"]
            medians[name] = median = statistics.median(values)
            spread = f"({min(values):.3g}-{max(values):.3g})" if len(values) > 1 else ""
            cells.append(f"{median:>11.4g} {spread:>12}")
        ratios = " / ".join(
            f"{name}: {medians[name] / medians[BASELINE]:.2f}x"
            for name in names if name.endswith("/stack") and medians.get(BASELINE)
        )  # fmt: skip
        lines.append(f"{label + f' [{unit}]':<30}" + "".join(cells) + "   " + ratios)
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        mode, host, seconds, connections = sys.argv[2:6]
        print(json.dumps(client(mode, host, float(seconds), int(connections))))
        return 0
    parser = argparse.ArgumentParser(description="anyio-on-trio over aionetstack vs trio")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--no-write", action="store_true", help="do not write results/")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("anyio_trio.py: needs root for the network namespace and the TUN", file=sys.stderr)
        return 2
    from aionetstack.testing.netns import network_namespace

    names = args.servers.split(",")
    with network_namespace("aionsbt"):
        results = measure(names, args.runs, args.seconds)
    print(table(results))
    if not args.no_write:
        path = write_result("anyio_trio", {"runs": args.runs, "seconds": args.seconds,
                                           "results": results})  # fmt: skip
        print(f"\nmachine: {machine()}\nwritten {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
