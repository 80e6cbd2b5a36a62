"""Kernel-side servers for the TUN tests, started inside the test's namespace.

Each is started by the test and stopped by its PID (or by joining its thread);
every wait is bounded. Nothing here leaves the namespace: the addresses are
the TUN's kernel side (198.18.0.1) and loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import pytest

T = TypeVar("T")


def require(tool: str) -> str:
    """The path of ``tool``, or skip (CI installs it: see .ci/run)."""
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if Path(p).exists()), None
    )
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install the package .ci/run names)")
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate by PID, then kill if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_for_dns(address: str, port: int, deadline: float) -> None:
    query = dns.message.make_query("probe.test", "A").to_wire()
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            with contextlib.suppress(OSError):
                probe.sendto(query, (address, port))
                probe.recvfrom(4096)
                return
        time.sleep(0.05)
    raise TimeoutError(f"no DNS answer from {address}:{port}")


def _wait_for_tcp(address: str, port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {address}:{port}")


@contextlib.contextmanager
def dnsmasq(
    directory: Path, address: str, names: Mapping[str, Sequence[str]], port: int = 53
) -> Iterator[subprocess.Popen[bytes]]:
    """Debian's dnsmasq answering ``names`` (a hosts file) on ``address``, ``.test`` local.

    Unknown ``.test`` names are NXDOMAIN (``--local=/test/``); nothing is forwarded.
    """
    binary = require("dnsmasq")
    hosts = directory / "dnsmasq.hosts"
    hosts.write_text("".join(f"{a} {name}\n" for name, addrs in names.items() for a in addrs))
    process = subprocess.Popen(
        [binary, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
         f"--addn-hosts={hosts}", "--local=/test/", f"--listen-address={address}",
         "--bind-interfaces", f"--port={port}", "--pid-file", "--user=root",
         "--log-facility=-", "--log-queries"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for_dns(address, port, time.monotonic() + 10)
        yield process
    finally:
        _stop(process)


@contextlib.contextmanager
def redis_server(directory: Path, address: str, port: int = 6379) -> Iterator[int]:
    """Debian's redis-server on ``address``:``port``, no persistence; yields its PID."""
    binary = require("redis-server")
    process = subprocess.Popen(
        [binary, "--bind", address, "--port", str(port), "--save", "", "--appendonly", "no",
         "--protected-mode", "no", "--dir", str(directory), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_tcp(address, port, time.monotonic() + 10)
        yield process.pid
    finally:
        _stop(process)


class KernelLoop:
    """An ordinary asyncio loop (kernel sockets) in a thread of the test's namespace."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> KernelLoop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@contextlib.contextmanager
def postgres_server(address: str, port: int = 5432) -> Iterator[int]:
    """Debian's PostgreSQL on ``address``:``port`` (trust auth, no fsync), run as the
    ``postgres`` user in a fresh data directory; yields its PID (stopped by it)."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not binaries or shutil.which("setpriv") is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql, see .ci/run)")
    bindir = binaries[-1].parent
    data = Path(tempfile.mkdtemp(prefix="aionetstack-pg-"))
    shutil.chown(data, "postgres", "postgres")
    as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
         "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write("host all all 198.18.0.0/15 trust\n")  # the stack's side of the TUN
    process = subprocess.Popen(
        [*as_postgres, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
         "-c", f"listen_addresses={address}", "-c", f"unix_socket_directories={data}",
         "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_tcp(address, port, time.monotonic() + 30)
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        shutil.rmtree(data, ignore_errors=True)
