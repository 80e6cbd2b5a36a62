"""Python bytecodes executed per 1-byte echo transaction (or per 64 KiB of bulk data), by
function: a deterministic cost count (no timing), two stacks over a memory link in one
process.

``python benchmarks/bytecodes.py [--transactions 300] [--top 40] [--bulk|--connect] [--asyncio]
[TREE ...]``

For each TREE (a checkout holding ``aionetstack/``; default: this one) a fresh
interpreter runs 50 warm-up transactions, then counts every bytecode (``sys.settrace``
with opcode events) of the next N, for the client stack, the server stack and asyncio
together. Each transaction is one segment each way through both stacks; halve the
figure for one side. Where a tree has modules that mypyc compiles
(``aionetstack/compiled.py``), their Python sources run and are counted, so trees
compare on the same code path whatever their builds. ``--bulk`` counts per 64 KiB
written instead, ``--connect`` per connection opened, echoing one byte and closed.
Prints the total per unit and the functions at the top.
``--asyncio`` counts the same client and server as plain asyncio streams over the
kernel's loopback (127.0.0.1), for comparison: the kernel's TCP work is not bytecode.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import asyncio, collections, os, runpy, sys
sys.path.insert(0, sys.argv[1])
_compiled = os.path.join(sys.argv[1], "aionetstack", "compiled.py")
if os.path.exists(_compiled):  # mypyc's modules: count their Python sources instead
    runpy.run_path(_compiled)["load_sources_first"]()
from aionetstack import MemoryLink, Stack
N, TOP = int(sys.argv[2]), int(sys.argv[3])
BULK, KERNEL = sys.argv[4] == "bulk", sys.argv[5] == "kernel"
CONNECT = sys.argv[4] == "connect"
counts = collections.Counter()

def tracer(frame, event, arg):
    frame.f_trace_opcodes = True
    code = frame.f_code
    key = f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"

    def local(frame, event, arg):
        if event == "opcode":
            counts[key] += 1
        return local

    return local

class Kernel:  # asyncio over the kernel's loopback, for comparison (--asyncio)
    async def __aenter__(self):
        return self
    async def __aexit__(self, *exc):
        return False
    async def start_server(self, handler, host, port):
        return await asyncio.start_server(handler, "127.0.0.1", port)
    async def open_connection(self, host, port):
        return await asyncio.open_connection("127.0.0.1", port)

async def main():
    if KERNEL:
        far = near = Kernel()
    else:
        a, b = MemoryLink.pair(mtu=1500)
        far = Stack(b, address="198.18.0.1/24", seed=2)
        near = Stack(a, address="198.18.0.2/24", seed=1)
    async with far, near:
        async def echo(reader, writer):
            while data := await reader.read(65536):
                if not BULK:
                    writer.write(data)
            writer.close()
        await far.start_server(echo, None, 5003)

        async def connect_request_close():
            reader, writer = await near.open_connection("198.18.0.1", 5003)
            writer.write(b"x")
            await reader.readexactly(1)
            writer.close()
            await writer.wait_closed()
            await reader.read()  # the server's FIN

        if CONNECT:
            for _ in range(50):
                await connect_request_close()
            sys.settrace(tracer)
            for _ in range(N):
                await connect_request_close()
            sys.settrace(None)
            return
        reader, writer = await near.open_connection("198.18.0.1", 5003)
        if BULK:
            block = bytes(65536)
            for _ in range(20):
                writer.write(block)
                await writer.drain()
            sys.settrace(tracer)
            for _ in range(N):
                writer.write(block)
                await writer.drain()
            sys.settrace(None)
        else:
            for _ in range(50):
                writer.write(b"x")
                await reader.readexactly(1)
            sys.settrace(tracer)
            for _ in range(N):
                writer.write(b"x")
                await reader.readexactly(1)
            sys.settrace(None)
        writer.close()

asyncio.run(main())
UNIT = "64 KiB" if BULK else "connect+request+close" if CONNECT else "transaction"
print(f"{sum(counts.values()) / N:.0f} bytecodes per {UNIT}")
for name, count in counts.most_common(TOP):
    print(f"{count / N:8.1f}  {name}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", type=Path, default=[HERE.parent])
    parser.add_argument("--transactions", type=int, default=300)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--bulk", action="store_true", help="per 64 KiB written, not per echo")
    parser.add_argument(
        "--connect",
        action="store_true",
        help="per connection opened, one 1-byte echo, closed (both ends)",
    )
    parser.add_argument(
        "--asyncio",
        action="store_true",
        help="asyncio's streams over the kernel's loopback instead (comparison)",
    )
    args = parser.parse_args()
    for tree in args.trees:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(tree.resolve()), str(args.transactions),
             str(args.top), "bulk" if args.bulk else "connect" if args.connect else "echo",
             "kernel" if args.asyncio else "stack"],
            capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "0"},
        )  # fmt: skip
        print(f"== {tree}: {result.stdout}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
