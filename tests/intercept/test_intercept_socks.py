"""The proxy's SOCKS5 path over a TUN: Debian's dante-server runs in the test's namespace.

dante listens on 127.0.0.1:1080 and dials out from 198.18.9.1 (``SOCKS_EXTERNAL``,
routed locally: see ``aionetstack.testing.kernel_servers``), so the kernel
servers see the addresses the clients dialled. The relay uses python-socks
for CONNECT and its own UDP ASSOCIATE; ``python -m aionetstack.proxy`` is run
as a subprocess too. dante is started by the test and killed by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aionetstack import Stack, TunLink
from aionetstack.proxy import Relay, Socks5Upstream
from aionetstack.testing.kernel_servers import (
    KERNEL,
    SOCKS_EXTERNAL,
    STACK,
    TUN,
    KernelServers,
    route_intercepted,
)
from aionetstack.testing.netns import Namespace

pytestmark = pytest.mark.tun

DANTED = shutil.which("danted") or "/usr/sbin/danted"
SOCKS_PORT = 1080
DANTE_CONFIG = f"""\
logoutput: stderr
internal: 127.0.0.1 port = {SOCKS_PORT}
external: {SOCKS_EXTERNAL}
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 }}
socks pass {{ from: 0.0.0.0/0 to: 0.0.0.0/0 command: connect udpassociate udpreply }}
"""


@pytest.fixture
async def dante(netns: Namespace, tmp_path: Path) -> AsyncIterator[None]:
    """danted on 127.0.0.1:1080 in the test's namespace (the routing set up first)."""
    if not Path(DANTED).exists():
        pytest.skip("dante-server is not installed (apt-get install dante-server)")
    route_intercepted(tun=None)
    config = tmp_path / "danted.conf"
    config.write_text(DANTE_CONFIG)
    log = (tmp_path / "danted.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        DANTED, "-f", str(config), stdout=log, stderr=log
    )
    try:
        for _ in range(100):  # bounded: 5 s
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", SOCKS_PORT), timeout=1),
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("danted never listened: " + (tmp_path / "danted.log").read_text())
        yield
    finally:
        process.kill()  # by PID: the process this fixture started
        await process.wait()
        log.close()


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "30", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out, err


async def test_relay_through_dante_tcp_udp_and_refusal(
    dante: None, kernel_servers: KernelServers, tmp_path: Path
) -> None:
    link = TunLink(TUN, kernel_address=f"{KERNEL}/24", offload=True)
    async with Stack(link, address=f"{STACK}/24") as stack:
        route_intercepted_tun()
        relay = Relay(Socks5Upstream("127.0.0.1", SOCKS_PORT, connect_timeout=3))
        await stack.intercept(tcp=relay.on_tcp, udp=relay.on_udp, networks=["198.19.0.0/16"])

        out = tmp_path / "body"
        port = kernel_servers.http_port
        code, headers, err = await curl("-D", "-", "-o", str(out), f"http://198.19.4.4:{port}/")
        assert code == 0, err
        assert out.read_bytes() == kernel_servers.body
        assert f"X-Reached: 198.19.4.4:{port}".encode() in headers

        code, _, err = await curl(f"http://198.19.4.4:{closed_port()}/")
        assert code == 7, err  # dante answers "connection refused": so does the relay
        assert relay.stats.tcp_refused == 1

        def exchange() -> list[tuple[bytes, tuple[str, int]]]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(5)
                answers = []
                for index in range(3):
                    client.sendto(b"via socks %d" % index, ("198.19.8.8", kernel_servers.udp_port))
                    answers.append(client.recvfrom(2048))
                return answers

        answers = await asyncio.get_running_loop().run_in_executor(None, exchange)
        target = ("198.19.8.8", kernel_servers.udp_port)
        assert answers == [(b"via socks %d" % i, target) for i in range(3)]
        assert relay.stats.udp_relayed == 1
        assert kernel_servers.udp_seen == [target] * 3


def route_intercepted_tun() -> None:
    import subprocess

    subprocess.run(["ip", "route", "replace", "198.19.0.0/16", "dev", TUN], check=True)


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("0.0.0.0", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


async def test_proxy_command_relays_through_dante_and_stops_on_sigterm(
    dante: None, kernel_servers: KernelServers, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aionetstack.proxy", "--tun", "aionsp0",
        "--networks", "198.19.0.0/16", "--socks5", f"127.0.0.1:{SOCKS_PORT}", "--route",
        "--stats-interval", "0.2",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert b"intercepting 198.19.0.0/16 on aionsp0" in line, line
        out = tmp_path / "body"
        code, _, err = await curl("-o", str(out), f"http://198.19.2.3:{kernel_servers.http_port}/")
        assert code == 0, err
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(
            kernel_servers.body).digest()  # fmt: skip
        code, _, err = await curl(f"http://198.19.2.3:{closed_port()}/")
        assert code == 7, err
    finally:
        process.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(process.stderr.read(), 30)
        status = await asyncio.wait_for(process.wait(), 30)
    assert status == 0, rest
    last = rest.decode().strip().splitlines()[-1]
    assert "tcp_relayed=1" in last and "tcp_refused=1" in last, rest
