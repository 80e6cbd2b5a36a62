"""TCP headers and options (RFC 9293 §3.1, RFC 7323, RFC 2018) and sequence arithmetic.

Sequence numbers are plain ints in ``0 .. 2**32-1``; every comparison is made
modulo 2**32 (RFC 9293 §3.4) with the helpers below. Parsing keeps the payload
as a ``memoryview`` of the input: the receiver copies it once, into its buffer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from .checksum import ones_complement_sum, pseudo_header_sum
from .error import WireError
from .seq import seq_add, seq_diff, seq_geq, seq_gt, seq_leq, seq_lt

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "HEADER",
    "PSH",
    "RST",
    "SYN",
    "TCP_HEADER_LENGTH",
    "TIMESTAMP_PREFIX",
    "URG",
    "TcpOptions",
    "TcpSegment",
    "build_options",
    "build_tcp",
    "flags_text",
    "parse_options",
    "parse_tcp",
    "seq_add",
    "seq_diff",
    "seq_geq",
    "seq_gt",
    "seq_leq",
    "seq_lt",
]

#: RFC 9293 §3.1 control bits (plus RFC 3168 ECE/CWR).
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

#: RFC 9293 §3.1: a header without options is five 32-bit words; at most fifteen.
TCP_HEADER_LENGTH: Final = 20
_MAX_HEADER_LENGTH: Final = 60

#: Option kinds (RFC 9293 §3.2, RFC 7323 §2.2/§3.2, RFC 2018 §2/§3).
OPT_EOL: Final = 0
OPT_NOP: Final = 1
OPT_MSS: Final = 2
OPT_WINDOW_SCALE: Final = 3
OPT_SACK_PERMITTED: Final = 4
OPT_SACK: Final = 5
OPT_TIMESTAMP: Final = 8

#: RFC 7323 §2.3: shift counts above 14 are treated as 14.
MAX_WINDOW_SCALE: Final = 14

_SEQ_MASK: Final = 0xFFFFFFFF

#: Fixed header: ports, seq, ack, data offset byte, flags, window, checksum, urgent pointer.
HEADER: Final = struct.Struct("!HHIIBBHHH")
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_TIMESTAMP_OPTION: Final = struct.Struct("!BBBBII")  # NOP NOP kind=8 len=10 TSval TSecr
#: NOP NOP and the timestamps option's kind and length: the layout Linux puts on every
#: segment (RFC 7323 Appendix A).
TIMESTAMP_PREFIX: Final = b"\x01\x01\x08\x0a"
_SACK_EDGE: Final = struct.Struct("!II")


# --- options ------------------------------------------------------------------------------


@dataclass(slots=True)
class TcpOptions:
    """The options the stack understands; unknown kinds are skipped by their length."""

    mss: int | None = None
    window_scale: int | None = None
    sack_permitted: bool = False
    #: (TSval, TSecr), RFC 7323 §3.2.
    timestamp: tuple[int, int] | None = None
    #: (left edge, right edge) pairs, RFC 2018 §3.
    sack_blocks: tuple[tuple[int, int], ...] = ()


#: The SYN layout's bytes 4-7 (SACK-permitted, then the timestamp option's kind and
#: length) and the whole layout after its MSS kind/length (RFC 9293 §3.2, RFC 2018 §2,
#: RFC 7323 §2.2-§3.2).
_SYN_FAST_MIDDLE: Final = b"\x04\x02\x08\x0a"
_SYN_OPTIONS: Final = struct.Struct("!2xH4sII3xB")


def parse_options(data: bytes | bytearray | memoryview) -> TcpOptions:
    """Parse the option bytes of a header (everything after the fixed 20 bytes).

    Malformed lengths (below 2, past the end, or wrong for a known kind) raise
    :class:`WireError` with reason ``"bad_option"``. Parsing stops at EOL.
    """
    options = TcpOptions()
    length = len(data)
    if length == 12 and data[:4] == TIMESTAMP_PREFIX:
        # Fast path: the NOP NOP TS layout that Linux puts on every data segment.
        _, _, _, _, tsval, tsecr = _TIMESTAMP_OPTION.unpack_from(data)
        options.timestamp = (tsval, tsecr)
        return options
    if (
        length == 20
        and data[:2] == b"\x02\x04"
        and data[4:8] == _SYN_FAST_MIDDLE
        and data[16:19] == b"\x01\x03\x03"
    ):
        # Fast path: the SYN layout of Linux (and of build_options): MSS, SACK-permitted,
        # timestamps, NOP, window scale.
        mss, _, tsval, tsecr, shift = _SYN_OPTIONS.unpack_from(data)
        options.mss = mss
        options.sack_permitted = True
        options.timestamp = (tsval, tsecr)
        options.window_scale = min(shift, MAX_WINDOW_SCALE)
        return options
    index = 0
    while index < length:
        kind = data[index]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            index += 1
            continue
        if index + 1 >= length:
            raise WireError(f"option kind {kind} has no length byte", "bad_option")
        size = data[index + 1]
        if size < 2 or index + size > length:
            raise WireError(f"option kind {kind} has bad length {size}", "bad_option")
        body = index + 2
        if kind == OPT_MSS:
            _expect_size(kind, size, 4)
            options.mss = _U16.unpack_from(data, body)[0]
        elif kind == OPT_WINDOW_SCALE:
            _expect_size(kind, size, 3)
            options.window_scale = min(data[body], MAX_WINDOW_SCALE)
        elif kind == OPT_SACK_PERMITTED:
            _expect_size(kind, size, 2)
            options.sack_permitted = True
        elif kind == OPT_TIMESTAMP:
            _expect_size(kind, size, 10)
            options.timestamp = (
                _U32.unpack_from(data, body)[0],
                _U32.unpack_from(data, body + 4)[0],
            )
        elif kind == OPT_SACK:
            if (size - 2) % 8 or size == 2:
                raise WireError(f"SACK option has bad length {size}", "bad_option")
            options.sack_blocks = tuple(
                _SACK_EDGE.unpack_from(data, offset) for offset in range(body, index + size, 8)
            )
        index += size
    return options


def _expect_size(kind: int, size: int, expected: int) -> None:
    if size != expected:
        raise WireError(f"option kind {kind} has length {size}, expected {expected}", "bad_option")


def build_options(
    *,
    mss: int | None = None,
    window_scale: int | None = None,
    sack_permitted: bool = False,
    timestamp: tuple[int, int] | None = None,
    sack_blocks: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
) -> bytes:
    """Return option bytes padded to a multiple of 4, in the layout Linux uses.

    SYN layout: MSS, SACK-permitted + timestamps (or NOP NOP TS), NOP + window scale.
    Data layout: NOP NOP TS, then NOP NOP SACK blocks. Raises ``ValueError`` when the
    options do not fit in 40 bytes.
    """
    out = bytearray()
    if mss is not None:
        out += struct.pack("!BBH", OPT_MSS, 4, mss)
    if timestamp is not None:
        if sack_permitted:
            out += struct.pack("!BBBBII", OPT_SACK_PERMITTED, 2, OPT_TIMESTAMP, 10, *timestamp)
        else:
            out += _TIMESTAMP_OPTION.pack(OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10, *timestamp)
    elif sack_permitted:
        out += bytes((OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2))
    if window_scale is not None:
        out += bytes((OPT_NOP, OPT_WINDOW_SCALE, 3, window_scale))
    if sack_blocks:
        out += bytes((OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(sack_blocks)))
        for left, right in sack_blocks:
            out += _SACK_EDGE.pack(left, right)
    if len(out) % 4:
        out += b"\x00" * (4 - len(out) % 4)
    if len(out) > _MAX_HEADER_LENGTH - TCP_HEADER_LENGTH:
        raise ValueError(f"TCP options of {len(out)} bytes exceed 40")
    return bytes(out)


# --- segments -----------------------------------------------------------------------------


@dataclass(slots=True)
class TcpSegment:
    """A parsed TCP segment. ``payload`` is a view into the parsed bytes."""

    source_port: int
    destination_port: int
    seq: int
    ack: int
    flags: int
    window: int
    checksum: int = 0
    urgent: int = 0
    header_length: int = TCP_HEADER_LENGTH
    options: TcpOptions = field(default_factory=TcpOptions)
    payload: memoryview = field(default_factory=lambda: memoryview(b""))

    @property
    def sequence_length(self) -> int:
        """Sequence space the segment occupies: payload plus one each for SYN and FIN."""
        return len(self.payload) + (self.flags & SYN) // SYN + (self.flags & FIN)


def parse_tcp(data: bytes | bytearray | memoryview) -> TcpSegment:
    """Parse a TCP segment (header, options, payload). The checksum is not verified here.

    Raises :class:`WireError` (``"truncated"``, ``"bad_header_length"``, ``"bad_option"``).
    """
    view = memoryview(data)
    if len(view) < TCP_HEADER_LENGTH:
        raise WireError(f"TCP segment of {len(view)} bytes is shorter than a header", "truncated")
    sport, dport, seq, ack, offset, flags, window, checksum, urgent = HEADER.unpack_from(view)
    header_length = (offset >> 4) * 4
    if header_length < TCP_HEADER_LENGTH:
        raise WireError(f"data offset {header_length // 4} is below 5", "bad_header_length")
    if header_length > len(view):
        raise WireError(f"data offset says {header_length} bytes, have {len(view)}", "truncated")
    options = (
        parse_options(view[TCP_HEADER_LENGTH:header_length]) if header_length > 20 else TcpOptions()
    )
    return TcpSegment(
        sport,
        dport,
        seq,
        ack,
        flags,
        window,
        checksum,
        urgent,
        header_length,
        options,
        view[header_length:],
    )


def build_tcp(  # noqa: PLR0917
    source_port: int,
    destination_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    *,
    options: bytes = b"",
    payload: bytes | bytearray | memoryview = b"",
    source: bytes | None = None,
    destination: bytes | None = None,
    urgent: int = 0,
) -> bytes:
    """Return segment bytes. With ``source``/``destination`` (4 or 16 packed bytes)
    the checksum is computed over the matching pseudo-header; without, it is 0.

    ``options`` must already be padded to a multiple of 4 (see :func:`build_options`).
    """
    if len(options) % 4 or len(options) > 40:
        raise ValueError("TCP options must be a multiple of 4 bytes, at most 40")
    header_length = TCP_HEADER_LENGTH + len(options)
    header = bytearray(header_length)
    HEADER.pack_into(
        header,
        0,
        source_port,
        destination_port,
        seq & _SEQ_MASK,
        ack & _SEQ_MASK,
        (header_length // 4) << 4,
        flags & 0xFF,
        window,
        0,
        urgent,
    )
    header[TCP_HEADER_LENGTH:] = options
    if source is not None and destination is not None:
        total = header_length + len(payload)
        partial = ones_complement_sum(payload, pseudo_header_sum(source, destination, 6, total))
        checksum = ~ones_complement_sum(header, partial) & 0xFFFF
        header[16] = checksum >> 8
        header[17] = checksum & 0xFF
    return bytes(header) + bytes(payload) if payload else bytes(header)


_FLAG_NAMES: Final = (
    (SYN, "S"),
    (FIN, "F"),
    (RST, "R"),
    (PSH, "P"),
    (ACK, "."),
    (URG, "U"),
    (ECE, "E"),
    (CWR, "W"),
)


def flags_text(flags: int) -> str:
    """tcpdump-style flag letters, e.g. ``"S."`` for SYN+ACK."""
    return "".join(letter for bit, letter in _FLAG_NAMES if flags & bit) or "none"
