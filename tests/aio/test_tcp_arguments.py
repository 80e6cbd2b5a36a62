"""Bad arguments to the TCP calls raise ValueError/TypeError saying what was wrong."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

from aionetstack import Stack

FAR = "198.18.0.1"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"host": FAR, "port": 0}, ValueError, "port"),
        ({"host": FAR, "port": 70000}, ValueError, "port"),
        ({"host": FAR, "port": "80"}, ValueError, "port"),
        ({"host": FAR, "port": True}, ValueError, "port"),
        ({"host": "example.test", "port": 80}, socket.gaierror, "Temporary failure"),
        ({"host": 17, "port": 80}, TypeError, "host must be a str"),
        ({"host": FAR, "port": 80, "server_hostname": "x"}, ValueError, "only meaningful with ssl"),
        ({"host": FAR, "port": 80, "ssl_handshake_timeout": 1.0}, ValueError, "with ssl"),
        ({"host": FAR, "port": 80, "ssl": "yes"}, TypeError, "SSLContext"),
        ({"host": FAR, "port": 80, "happy_eyeballs_delay": -1}, ValueError, "happy_eyeballs"),
        ({"host": FAR, "port": 80, "proto": 6}, ValueError, "not supported"),
        ({"host": FAR, "port": 80, "no_such_option": 1}, TypeError, "no_such_option"),
        ({"host": FAR, "port": 80, "local_addr": "198.18.0.2"}, TypeError, "local_addr"),
        ({"host": FAR, "port": 80, "local_addr": ("198.18.0.2", -1)}, ValueError, "port"),
    ],
)
async def test_create_connection_rejects(
    stacks: tuple[Stack, Stack], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    near, _ = stacks
    with pytest.raises(error, match=message):
        await near.create_connection(asyncio.Protocol, **kwargs)
    assert near.core.tcp.connections == []  # nothing was started


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"port": -1}, ValueError, "port"),
        ({"port": 65536}, ValueError, "port"),
        ({"port": 1.5}, ValueError, "port"),
        ({"port": False}, ValueError, "port"),
        ({"host": "localhost"}, socket.gaierror, "Temporary failure"),
        ({"reuse_port": True}, ValueError, "reuse_port"),
        ({"backlog": 0}, ValueError, "backlog"),
        ({"ssl": True}, TypeError, "SSLContext"),
        ({"ssl_handshake_timeout": 5.0}, ValueError, "only meaningful with ssl"),
        ({"keep_alive": True}, ValueError, "keep_alive"),
        ({"bogus": 1}, TypeError, "bogus"),
    ],
)
async def test_create_server_rejects(
    stacks: tuple[Stack, Stack], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    _, far = stacks
    with pytest.raises(error, match=message):
        await far.create_server(asyncio.Protocol, **kwargs)
    assert far._servers == set()


async def test_stream_calls_pass_checks_through(stacks: tuple[Stack, Stack]) -> None:
    near, far = stacks
    with pytest.raises(socket.gaierror):  # no nameservers: EAI_AGAIN, as glibc without any
        await near.open_connection("host.invalid", 80)
    with pytest.raises(ValueError, match="reuse_port"):
        await far.start_server(lambda r, w: None, FAR, 80, reuse_port=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(ValueError, match="port"):
        await far.start_server(lambda r, w: None, FAR, -5, ssl=context)
