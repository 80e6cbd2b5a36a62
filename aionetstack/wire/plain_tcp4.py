"""The receive classification of the commonest packet: TCP in IPv4 without IP options
or fragments (RFC 791 §3.1, RFC 9293 §3.1), checked and unpacked in one call.

:func:`parse_plain_tcp4` is ``wire/_plain_tcp4.c``'s when that module was built
(``ACCELERATED``) and otherwise :func:`parse_plain_tcp4_python`, its reference: the
same answer for every input, held to it by ``tests/wire/test_plain_tcp4_native.py``.
It answers ``None`` for anything else, for a packet not to one of ``destinations``
(our addresses) or from one of ``refused_sources`` or a martian source, and for a
packet failing a check (the caller's full path then looks at it again and counts the
drop under its reason), or the tuple
:data:`PlainTcp4`: ``(source, destination, sport, dport, seq, ack, flags, window,
options, payload)``. ``options`` is ``None`` for a 20-byte TCP header, a
:class:`~.tcp.TcpOptions` holding the timestamps alone for the NOP NOP TS layout that
Linux puts on every segment (RFC 7323 Appendix A), and otherwise a view of the option
bytes for :func:`~.tcp.parse_options`; ``payload`` is a view of ``data``, or a copy
(``bytes``) when shorter than :data:`SMALL_PAYLOAD` bytes.

The checks, in order: version 4 with a 20-byte header, room for two fixed headers,
protocol TCP, a total length between 40 and the packet's, no fragment (MF or an
offset), TTL not 0 (RFC 1122 §3.2.1.7), a source that is not martian
(:data:`~.ipv4.MARTIAN_FIRST_OCTETS`), the destination in ``destinations`` and the
source not in ``refused_sources`` (both sets of 4-byte addresses), the header
checksum (``verify_header``), the TCP checksum over the pseudo-header
(``verify_transport``), and a TCP data offset between 5 words and the segment's
length. ``data`` is a buffer of bytes (``bytes``, ``bytearray``, a ``memoryview`` of
single bytes); anything else is a ``TypeError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias

from .checksum import pseudo_header_sum, word_sum
from .ipv4 import FRAGMENT_BITS, HEADER, IPV4_HEADER_LENGTH, MARTIAN_FIRST_OCTETS, PROTO_TCP
from .tcp import HEADER as TCP_HEADER
from .tcp import TCP_HEADER_LENGTH, TIMESTAMP_PREFIX, TcpOptions

__all__ = [
    "ACCELERATED",
    "SMALL_PAYLOAD",
    "PlainTcp4",
    "parse_plain_tcp4",
    "parse_plain_tcp4_python",
]

#: (source, destination, sport, dport, seq, ack, flags, window, options, payload).
PlainTcp4: TypeAlias = tuple[
    bytes, bytes, int, int, int, int, int, int, "TcpOptions | memoryview | None", bytes | memoryview
]
#: A payload shorter than this comes as ``bytes``, copied out of the packet: cheaper than
#: a view, and the receive buffer copies one this small anyway (``SMALL_CHUNK`` of
#: ``core/tcp/receive_buffer.py``).
SMALL_PAYLOAD: Final = 512

#: RFC 791 §3.1: version 4, IHL 5 (no options).
_V4_NO_OPTIONS: Final = 0x45
_MINIMUM: Final = IPV4_HEADER_LENGTH + TCP_HEADER_LENGTH
#: The fixed TCP header and NOP NOP TS (RFC 7323 Appendix A).
_TIMESTAMP_HEADER_LENGTH: Final = TCP_HEADER_LENGTH + 12


def parse_plain_tcp4_python(
    data: bytes | bytearray | memoryview,
    verify_header: bool,
    verify_transport: bool,
    destinations: frozenset[bytes],
    refused_sources: frozenset[bytes],
) -> PlainTcp4 | None:
    """:func:`parse_plain_tcp4` in Python: the reference for ``wire/_plain_tcp4.c``."""
    if not isinstance(destinations, set | frozenset) or not isinstance(
        refused_sources, set | frozenset
    ):
        raise TypeError("parse(): destinations and refused_sources must be sets")
    if memoryview(data).itemsize != 1:
        raise TypeError("parse(): data must be a buffer of bytes")
    length = len(data)
    if length < _MINIMUM or data[0] != _V4_NO_OPTIONS:
        return None
    _, _, total, _, fragment, ttl, protocol, _, source, destination = HEADER.unpack_from(data)
    if (
        protocol != PROTO_TCP
        or not _MINIMUM <= total <= length
        or fragment & FRAGMENT_BITS
        or not ttl
        or source[0] in MARTIAN_FIRST_OCTETS
        or destination not in destinations
        or source in refused_sources
    ):
        return None
    # RFC 1071: a header with its checksum in place sums to a non-zero multiple of 0xFFFF.
    if verify_header and word_sum(data[:IPV4_HEADER_LENGTH]) % 0xFFFF:
        return None
    segment = memoryview(data)[IPV4_HEADER_LENGTH:total]
    # RFC 9293 §3.1: the pseudo-header and the segment, checksum included, sum to a
    # multiple of 0xFFFF (never to 0: the protocol is in it).
    if (
        verify_transport
        and (pseudo_header_sum(source, destination, PROTO_TCP, len(segment)) + word_sum(segment))
        % 0xFFFF
    ):
        return None
    sport, dport, seq, ack, offset, flags, window, _, _ = TCP_HEADER.unpack_from(segment)
    header_length = (offset >> 4) << 2
    if not TCP_HEADER_LENGTH <= header_length <= len(segment):
        return None
    options: TcpOptions | memoryview | None = None
    if header_length == _TIMESTAMP_HEADER_LENGTH and segment[20:24].tobytes() == TIMESTAMP_PREFIX:
        options = TcpOptions(
            timestamp=(
                int.from_bytes(segment[24:28], "big"),
                int.from_bytes(segment[28:32], "big"),
            )
        )
    elif header_length > TCP_HEADER_LENGTH:
        options = segment[TCP_HEADER_LENGTH:header_length]
    view = segment[header_length:]
    payload = view.tobytes() if len(view) < SMALL_PAYLOAD else view
    return (source, destination, sport, dport, seq, ack, flags, window, options, payload)


parse_plain_tcp4: Callable[
    [bytes | bytearray | memoryview, bool, bool, frozenset[bytes], frozenset[bytes]],
    PlainTcp4 | None,
]
try:
    from ._plain_tcp4 import bind as _bind
    from ._plain_tcp4 import parse as parse_plain_tcp4
except ImportError:  # built without a C compiler: the same contract in Python
    parse_plain_tcp4 = parse_plain_tcp4_python
else:
    _bind(TcpOptions)
#: The C classification (``wire/_plain_tcp4.c``) is in use.
ACCELERATED: Final = parse_plain_tcp4 is not parse_plain_tcp4_python
