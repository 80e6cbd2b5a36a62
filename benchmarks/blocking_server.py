"""The headroom server: blocking kernel sockets, one thread per connection.

``python blocking_server.py HOST [--cpu N]`` serves the same three handlers as
``server.py`` (5001 sink, 5002 source, 5003 echo) the way ``client.py`` talks:
it is what the client reaches against a server of its own kind, so a benchmark
table can show whether the client, rather than the server under test, was the
limit (DESIGN.md §6). Prints ``ready``; on stdin ``rss`` and ``cpu`` answer one
line each; EOF stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import threading

BLOCK = bytes(range(256)) * 256  # 64 KiB
RECEIVE = 256 * 1024


def sink(sock: socket.socket) -> None:
    buffer = bytearray(RECEIVE)
    while sock.recv_into(buffer):
        pass


def source(sock: socket.socket) -> None:
    while True:
        sock.sendall(BLOCK)


def echo(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := sock.recv(65536):
        sock.sendall(data)


def serve_one(handler: object, sock: socket.socket) -> None:
    try:
        handler(sock)  # type: ignore[operator]
    except OSError:
        pass  # a client ending a download resets the connection
    finally:
        sock.close()


def accept_loop(listener: socket.socket, handler: object) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve_one, args=(handler, sock), daemon=True).start()


def rss_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() // 1024


def cpu_seconds() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": usage.ru_utime, "sys": usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listeners = []
    for port, handler in ((5001, sink), (5002, source), (5003, echo)):
        listener = socket.create_server((args.host, port), backlog=1024)
        listeners.append(listener)
        threading.Thread(target=accept_loop, args=(listener, handler), daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "rss":
            print(rss_kib(), flush=True)
        elif line.strip() == "cpu":
            print(json.dumps(cpu_seconds()), flush=True)
    for listener in listeners:
        listener.close()


if __name__ == "__main__":
    main()
