"""The receive classification's C function (wire/_plain_tcp4.c) against its Python
twin, ``parse_plain_tcp4_python``: the same answer for every packet drawn.

Packets are built valid (dpkt-checked builders of wire/ipv4.py and wire/tcp.py) and
then varied the ways a network varies them: every option layout the stack meets (none,
NOP NOP TS, the SYN layouts, SACK, padding, malformed), payloads from 0 bytes to a
64 KB super-packet, TTL 0, fragments, another protocol, IP options, a total length
short of or past the buffer, any one byte rewritten (so every checksum and header rule
is crossed), trailing bytes, and bytes, bytearray or views into a larger buffer. Each
rule is also checked on its own below, with the answer both must give.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.testing.native_fuzz import comparable_answer
from aionetstack.wire import plain_tcp4
from aionetstack.wire.ipv4 import IPv4Header, build_ipv4
from aionetstack.wire.plain_tcp4 import (
    SMALL_PAYLOAD,
    PlainTcp4,
    parse_plain_tcp4,
    parse_plain_tcp4_python,
)
from aionetstack.wire.tcp import TcpOptions, build_options, build_tcp

needs_c = pytest.mark.skipif(not plain_tcp4.ACCELERATED, reason="wire/_plain_tcp4.c not built")

PEER, US = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
OURS = frozenset([US, bytes([198, 18, 0, 3])])
REFUSED = frozenset([*OURS, bytes([198, 18, 0, 255])])
TIMESTAMPS = bytes((1, 1, 8, 10)) + (7).to_bytes(4, "big") + (0xFFFFFFFF).to_bytes(4, "big")
OPTION_LAYOUTS = [
    b"",
    TIMESTAMPS,
    build_options(mss=1460, window_scale=7, sack_permitted=True, timestamp=(5, 0)),
    build_options(mss=536),
    bytes((1, 1, 5, 10)) + bytes(8) + bytes((1, 1, 8, 10)) + bytes(8),  # SACK then TS
    bytes((1, 1, 8, 10)) + bytes(8) + bytes((1, 1, 1, 1)),  # TS, NOPs: 36 bytes
    bytes((1, 1, 8, 9)) + bytes(8),  # the TS prefix wrong by one length byte
    bytes((2, 1, 0, 0)),  # malformed: for parse_options to refuse
    bytes(4),  # EOL padding
]


def packet(  # noqa: PLR0917
    payload: bytes = b"x", options: bytes = TIMESTAMPS, flags: int = 0x18, ttl: int = 64,
    protocol: int = 6, seq: int = 1, ack: int = 2, window: int = 512,
    more_fragments: bool = False, fragment_offset: int = 0, source: bytes = PEER,
    destination: bytes = US,
) -> bytes:  # fmt: skip
    segment = build_tcp(
        40000, 80, seq, ack, flags, window, options=options, payload=payload,
        source=source, destination=destination,
    )  # fmt: skip
    header = IPv4Header(
        source, destination, protocol, ttl=ttl, identification=7,
        more_fragments=more_fragments, fragment_offset=fragment_offset,
    )  # fmt: skip
    return build_ipv4(header, segment)


def comparable(answer: PlainTcp4 | None) -> object:
    """:func:`comparable_answer`, the payload checked to be a view, or bytes when it is
    shorter than SMALL_PAYLOAD."""
    if answer is not None:
        small = len(answer[9]) < SMALL_PAYLOAD
        assert type(answer[9]) is (bytes if small else memoryview)
    return comparable_answer(answer)


def both(data: bytes | bytearray | memoryview, verify_header: bool = True,
         verify_transport: bool = True) -> object:  # fmt: skip
    """Both answers, asserted equal; the common one."""
    arguments = (data, verify_header, verify_transport, OURS, REFUSED)
    expected = comparable(parse_plain_tcp4_python(*arguments))
    assert comparable(parse_plain_tcp4(*arguments)) == expected
    return expected


def as_kind(data: bytes, kind: str) -> bytes | bytearray | memoryview:
    if kind == "bytearray":
        return bytearray(data)
    if kind == "view":
        return memoryview(b"\xee" * 3 + data + b"\xee")[3:-1]
    return data


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([0, 1, 2, 3, 1447, 1448, 9000, 65_000]))
    data = packet(
        random.Random(draw(st.integers(0, 9))).randbytes(size),
        draw(st.sampled_from(OPTION_LAYOUTS)),
        draw(st.integers(0, 255)),
        draw(st.sampled_from([0, 1, 64, 255])),
        draw(st.sampled_from([6, 6, 6, 17])),
        draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF])),
        draw(st.sampled_from([0, 0x80000000, 0xFFFFFFFF])),
        draw(st.sampled_from([0, 1, 0xFFFF])),
        draw(st.booleans()) and draw(st.booleans()),
        draw(st.sampled_from([0, 0, 0, 8, 65_528])),
        draw(st.sampled_from([PEER, PEER, bytes([198, 18, 0, 255]), bytes([127, 0, 0, 1])])),
        draw(st.sampled_from([US, US, bytes([198, 18, 0, 3]), bytes([198, 18, 0, 4])])),
    )
    edit = draw(st.sampled_from(["none", "none", "byte", "cut", "grow", "total"]))
    if edit == "byte":
        changed = bytearray(data)
        changed[draw(st.integers(0, min(len(data), 80) - 1))] = draw(st.integers(0, 255))
        data = bytes(changed)
    elif edit == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif edit == "grow":
        data += bytes(draw(st.integers(1, 9)))
    elif edit == "total":  # the total length field alone (the header checksum then fails)
        data = data[:2] + draw(st.integers(0, 0xFFFF)).to_bytes(2, "big") + data[4:]
    return data


@needs_c
@settings(max_examples=600, deadline=None)
@given(packets(), st.sampled_from(["bytes", "bytearray", "view"]), st.booleans(), st.booleans())
def test_the_c_classification_equals_the_python_one(
    data: bytes, kind: str, verify_header: bool, verify_transport: bool
) -> None:
    both(as_kind(data, kind), verify_header, verify_transport)


@needs_c
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.booleans(), st.booleans())
def test_arbitrary_bytes_get_the_same_answer(
    data: bytes, verify_header: bool, verify_transport: bool
) -> None:
    both(data, verify_header, verify_transport)


def test_a_data_segment_with_timestamps_is_unpacked() -> None:
    answer = both(packet(b"hello", seq=0xFFFFFFFF, ack=0x80000000, window=0xFFFF))
    assert answer == (
        PEER, US, 40000, 80, 0xFFFFFFFF, 0x80000000, 0x18, 0xFFFF,
        TcpOptions(timestamp=(7, 0xFFFFFFFF)), b"hello",
    )  # fmt: skip
    large = bytes(range(256)) * 2  # SMALL_PAYLOAD: from here on, a view of the packet
    assert both(packet(large))[9] == ("view", large)  # type: ignore[index]


def test_other_option_layouts_are_handed_back_as_their_bytes() -> None:
    assert both(packet(b"", b""))[8:] == (None, b"")  # type: ignore[index]
    for options in OPTION_LAYOUTS[2:]:
        assert both(packet(b"ab", options))[8:] == (("view", options), b"ab")  # type: ignore[index]


REFUSALS = [
    pytest.param(packet()[:39], True, True, id="short"),  # no room for both fixed headers
    pytest.param(bytes([0x46]) + packet()[1:], False, False, id="ip-options"),  # IHL 6
    pytest.param(bytes([0x65]) + packet()[1:], False, False, id="version-6"),
    pytest.param(packet(protocol=17), True, True, id="udp"),
    pytest.param(packet(ttl=0), True, True, id="ttl-0"),  # RFC 1122 §3.2.1.7
    pytest.param(packet(more_fragments=True), True, True, id="more-fragments"),
    pytest.param(packet(fragment_offset=8), True, True, id="offset"),
    pytest.param(packet()[:-1], True, True, id="total-past-end"),
    pytest.param(packet()[:-1], False, False, id="total-past-end-unchecked"),
    pytest.param(packet(destination=bytes([198, 18, 0, 4])), True, True, id="not-ours"),
    pytest.param(packet(source=bytes([198, 18, 0, 255])), True, True, id="refused-source"),
    pytest.param(packet(source=US), True, True, id="own-source"),
    pytest.param(packet(source=bytes([0, 1, 2, 3])), True, True, id="martian-0"),
    pytest.param(packet(source=bytes([127, 0, 0, 1])), True, True, id="martian-127"),
    pytest.param(packet(source=bytes([224, 0, 0, 1])), True, True, id="martian-224"),
    pytest.param(
        packet()[:2] + (39).to_bytes(2, "big") + packet()[4:], False, False, id="total-below-40"
    ),
    pytest.param(packet()[:10] + b"\x00\x00" + packet()[12:], True, False, id="header-checksum"),
    pytest.param(packet()[:-1] + b"y", False, True, id="tcp-checksum"),
    pytest.param(packet()[:32] + bytes([0x40]) + packet()[33:], False, False, id="data-offset-4"),
    pytest.param(  # past the segment, within the bytes that follow the packet
        packet(b"")[:32] + bytes([0xF0]) + packet(b"")[33:] + bytes(40),
        False,
        False,
        id="data-offset-past-segment",
    ),
    pytest.param(
        packet(b"")[:32] + bytes([0xF0]) + packet(b"")[33:],
        False,
        False,
        id="data-offset-past-end",
    ),
]


@pytest.mark.parametrize(("data", "verify_header", "verify_transport"), REFUSALS)
def test_each_rule_refuses_alike(data: bytes, verify_header: bool, verify_transport: bool) -> None:
    assert both(data, verify_header, verify_transport) is None


def test_checks_turned_off_let_a_bad_checksum_through() -> None:
    bad_header = packet()[:10] + b"\x00\x00" + packet()[12:]
    assert both(bad_header, False, True) is not None
    bad_segment = packet()[:-1] + b"y"
    assert both(bad_segment, True, False) is not None
    assert both(packet() + b"pad") is not None  # bytes past the total length: ignored
    assert both(packet(source=bytes([223, 1, 1, 1]), destination=bytes([198, 18, 0, 3])))


@pytest.mark.parametrize("parse", [parse_plain_tcp4, parse_plain_tcp4_python])
def test_arguments_that_are_not_a_packet_are_refused(parse: object) -> None:
    assert callable(parse)
    with pytest.raises(TypeError):
        parse("text", True, True, OURS, REFUSED)
    with pytest.raises(TypeError, match="a buffer of bytes"):
        parse(memoryview(packet(b"xy")).cast("H"), True, True, OURS, REFUSED)
    with pytest.raises(TypeError, match="must be sets"):
        parse(packet(), True, True, [US], REFUSED)
    with pytest.raises(TypeError, match="must be sets"):
        parse(packet(), True, True, OURS, None)
    assert parse(memoryview(packet()).cast("B"), True, True, OURS, REFUSED) is not None


@needs_c
def test_bind_and_the_arity_are_checked() -> None:
    from aionetstack.wire import _plain_tcp4  # type: ignore[attr-defined]

    with pytest.raises(TypeError, match="takes 5 arguments"):
        _plain_tcp4.parse(packet(), True, True)
    with pytest.raises(TypeError, match="takes a class"):
        _plain_tcp4.bind(TcpOptions())
    with pytest.raises(TypeError, match="are not TcpOptions'"):
        _plain_tcp4.bind(IPv4Header)

    class Checked(TcpOptions):
        __slots__ = ()

        def __post_init__(self) -> None:
            raise AssertionError("never made without it")

    Checked.__slots__ = TcpOptions.__slots__  # type: ignore[misc]
    with pytest.raises(TypeError, match="__post_init__"):
        _plain_tcp4.bind(Checked)
    _plain_tcp4.bind(TcpOptions)  # as the import left it


@pytest.mark.parametrize("parse", [parse_plain_tcp4, parse_plain_tcp4_python])
def test_no_view_outlives_the_answer(parse: object) -> None:
    """Every view of the packet is let go with the answer (a leaked one would pin a
    bytearray, which then refuses to be resized), on each kind of answer; an answer
    whose payload is small and options parsed (or none) holds no view at all."""
    assert callable(parse)
    for data in (packet(b"abc"), packet(b"", b"")):
        buffer = bytearray(data)
        answer = parse(buffer, True, True, OURS, REFUSED)
        assert answer is not None
        buffer.append(0)  # the payload is a copy: nothing holds the buffer
    large = bytes(SMALL_PAYLOAD)
    for data in (packet(large), packet(b"ab", OPTION_LAYOUTS[2])):
        for verify in (True, False):
            buffer = bytearray(data)
            answer = parse(buffer, verify, verify, OURS, REFUSED)
            assert answer is not None
            with pytest.raises(BufferError):
                buffer.append(0)  # the payload view (or the options view) holds it
            del answer
            buffer.append(0)  # nothing holds it any more
        buffer = bytearray(packet(ttl=0))
        assert parse(buffer, True, True, OURS, REFUSED) is None
        buffer.append(0)


def test_without_the_c_module_the_python_twin_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback an install without a compiler has (the subprocess test in
    test_word_sum.py runs this file with the module unimportable)."""
    from aionetstack.core.stack import StackCore

    monkeypatch.setattr("aionetstack.core.stack.parse_plain_tcp4", parse_plain_tcp4_python)
    core = StackCore(["198.18.0.2/24"], rng=random.Random(1))
    core.tcp.listen(None, 80)
    syn = packet(b"", build_options(mss=1460, timestamp=(5, 0)), flags=0x02)
    core.receive_packet(syn, 1.0)
    assert core.statistics()["tcp"]["segments_in"] == 1
    assert len(core.packets_to_send(1.0)) == 1  # the SYN-ACK


def test_the_c_classification_is_built_where_required() -> None:
    """CI (AIONETSTACK_REQUIRE_ACCEL=1) has a compiler: a silent fallback is a failure."""
    if not os.environ.get("AIONETSTACK_REQUIRE_ACCEL"):
        pytest.skip("AIONETSTACK_REQUIRE_ACCEL is not set")
    assert plain_tcp4.ACCELERATED, "wire/_plain_tcp4.c was not built: is a C compiler installed?"
