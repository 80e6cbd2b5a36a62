"""Seed the fuzzing corpora from pcap files.

    python tests/fuzz/corpus_from_pcaps.py [FILE.pcap ...]

Every distinct packet of the given captures (the raw-IP pcaps ``Stack(pcap=...)``
writes; tests leave them in their tmp_path) becomes ``corpus/packets/<hash>.bin``
for the parser targets. Packets sent by 198.18.0.1 to 198.18.0.2 also become a
one-record script in ``corpus/stack/`` for the stateful target, and all of them
together one longer script. With no files, the script first records a session of
its own (two stacks on a memory link: ping, UDP, a TCP echo and close).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's aionetstack

from aionetstack import MemoryLink, Stack
from aionetstack.testing.fuzz import raw_record

HERE = Path(__file__).parent / "corpus"
PEER = bytes([198, 18, 0, 1])
US = bytes([198, 18, 0, 2])


async def _record_session(path: Path) -> None:
    near_link, far_link = MemoryLink.pair(mtu=1500)
    async with (
        Stack(far_link, address="198.18.0.1/24", seed=2, pcap=str(path)) as far,
        Stack(near_link, address="198.18.0.2/24", seed=1) as near,
    ):

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(4096))
            await writer.drain()
            writer.close()

        server = await near.start_server(echo, port=7)
        reader, writer = await far.open_connection("198.18.0.2", 7)
        writer.write(b"hello fuzzer" * 50)
        await reader.read()
        writer.close()
        await far.ping("198.18.0.2", timeout=1.0)
        server.close()
        await asyncio.sleep(0.3)  # let the closing segments cross


def packets_of(path: Path) -> list[bytes]:
    with path.open("rb") as file:
        return [bytes(data) for _, data in dpkt.pcap.Reader(file)]


def main(argv: list[str]) -> int:
    files = [Path(arg) for arg in argv]
    with tempfile.TemporaryDirectory() as scratch:
        if not files:
            own = Path(scratch) / "session.pcap"
            asyncio.run(_record_session(own))
            files = [own]
        packets: dict[str, bytes] = {}
        for path in files:
            for packet in packets_of(path):
                packets.setdefault(hashlib.sha1(packet).hexdigest()[:16], packet)
    (HERE / "packets").mkdir(parents=True, exist_ok=True)
    (HERE / "stack").mkdir(parents=True, exist_ok=True)
    script = b""
    for name, packet in sorted(packets.items()):
        (HERE / "packets" / f"{name}.bin").write_bytes(packet)
        if len(packet) >= 20 and packet[12:16] == PEER and packet[16:20] == US:
            record = raw_record(packet)
            (HERE / "stack" / f"{name}.bin").write_bytes(record)
            script += record
    (HERE / "stack" / "session.bin").write_bytes(script)
    print(f"{len(packets)} packets from {len(files)} capture(s) into {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
