"""Write the seed corpus of atheris_native.py: realistic batches (tests/fuzz/corpus/native).

python tests/fuzz/native_seeds.py
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aionetstack.testing.native_fuzz import native_input
from aionetstack.testing.segments import make_segment
from aionetstack.wire import ipv4, ipv6
from aionetstack.wire.tcp import ACK, PSH, build_options

A4, B4 = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
A6 = bytes.fromhex("20010002000000000000000000000001")
B6 = bytes.fromhex("20010002000000000000000000000002")
TS = build_options(timestamp=(7, 9))


#: The SYN layout and a malformed MSS option (the classification hands both back as bytes).
SYN_OPTIONS = build_options(mss=1460, window_scale=7, sack_permitted=True, timestamp=(5, 0))
MALFORMED = bytes((2, 1, 0, 0))


def packet(version: int, seq: int, size: int, *, flags: int = ACK, ack: int = 5,
           options: bytes = TS) -> bytes:  # fmt: skip
    source, destination = (A4, B4) if version == 4 else (A6, B6)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    segment = make_segment(source, destination, 40000, 80, seq=seq, ack=ack, flags=flags,
                           options=options, payload=payload)  # fmt: skip
    if version == 4:
        return ipv4.build_ipv4(ipv4.IPv4Header(source, destination, 6), segment)
    return ipv6.build_ipv6(ipv6.IPv6Header(source, destination, 6), segment)


def seeds() -> list[bytes]:
    run4 = [packet(4, 1000 + i * 300, 300) for i in range(4)]
    run6 = [packet(6, 1000 + i * 300, 300, flags=ACK | PSH if i == 2 else ACK) for i in range(3)]
    acks = [packet(4, 1, 0, ack=100 + i) for i in range(4)]
    return [
        native_input(run4),
        native_input(run6, segment_size=100, link_header=False),
        native_input(acks + run4[:2], views=True),
        native_input([*run4, *acks], verify=False, segment_size=7),
        native_input([bytes(14) + run4[0]], segment_size=128, link_header=True),
        native_input(
            [
                packet(4, 1, 0, flags=0x02, options=SYN_OPTIONS),
                packet(4, 9, 5, options=b""),
                packet(4, 9, 5, options=MALFORMED),
            ],
            verify_header=False,
        ),
    ]


if __name__ == "__main__":
    out = Path(__file__).parent / "corpus" / "native"
    out.mkdir(parents=True, exist_ok=True)
    for seed in seeds():
        (out / (hashlib.sha1(seed).hexdigest() + ".bin")).write_bytes(seed)
