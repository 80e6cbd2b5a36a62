"""What a server does when the application's protocol factory raises.

asyncio (``selector_events._accept_connection2``) drops the accepted socket,
so the client sees the connection end, and reports the error to the loop's
exception handler; the server and every other connection go on. Libraries
rely on this: asyncssh's listener tunnel, for one, hands the stack a factory
of another shape (see test_asyncssh.py), and any bug in a factory must not
leave clients hanging.
"""

from __future__ import annotations

import asyncio

from aionetstack import Stack

STACK = "198.18.0.2"


def failing_factory() -> asyncio.Protocol:
    raise RuntimeError("the application's protocol factory failed")


async def test_a_failing_protocol_factory_ends_the_connection(
    memory_stacks: tuple[Stack, Stack],
) -> None:
    stack, peer = memory_stacks
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        await stack.create_server(failing_factory, STACK, 1000)
        reader, _writer = await peer.open_connection(STACK, 1000)
        async with asyncio.timeout(3):
            try:
                assert await reader.read(1) == b""
            except ConnectionResetError:
                pass  # a reset ends it too
    finally:
        loop.set_exception_handler(None)
    assert any(isinstance(context.get("exception"), RuntimeError) for context in reported)
    assert not any("AsyncioDriver" in str(context.get("message", "")) for context in reported), (
        "the error must not escape into the stack's driver callback"
    )


async def test_other_connections_still_work_after_a_failing_factory(
    memory_stacks: tuple[Stack, Stack],
) -> None:
    stack, peer = memory_stacks
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, _context: None)  # the failure is expected

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    try:
        await stack.create_server(failing_factory, STACK, 1000)
        await stack.start_server(echo, STACK, 1001)
        await peer.open_connection(STACK, 1000)
        reader, writer = await peer.open_connection(STACK, 1001)
        writer.write(b"still serving\n")
        async with asyncio.timeout(3):
            assert await reader.readline() == b"still serving\n"
        writer.close()
    finally:
        loop.set_exception_handler(None)
