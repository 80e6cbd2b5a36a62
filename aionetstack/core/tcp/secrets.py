"""Keyed hashes for ISNs (RFC 6528), ephemeral ports (RFC 6056) and SYN cookies (RFC 4987).

The keys are drawn once from the injected :class:`RandomSource`, so a seeded
simulation reproduces exactly while production draws from the OS.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from ..randomness import RandomSource

__all__ = ["COOKIE_MSS_TABLE", "KeyedHashes"]

_SEQ_MASK: Final = 0xFFFFFFFF
#: RFC 6528 §3: M is a timer that ticks every 4 microseconds.
_ISN_TICKS_PER_SECOND: Final = 250_000
#: SYN cookie layout (ours, in the spirit of RFC 4987 §3.6 and Linux):
#: 5 bits of a 64-second counter | 3 bits of MSS index | 24 bits of keyed hash.
_COOKIE_PERIOD: Final = 64.0
_COOKIE_COUNTER_BITS: Final = 5
_COOKIE_HASH_MASK: Final = 0xFFFFFF
#: Cookies older than this many periods are refused (Linux: 2 minutes).
_COOKIE_MAX_AGE: Final = 2
#: MSS values a cookie can carry, smallest first (Linux's msstab plus 1440/8960).
COOKIE_MSS_TABLE: Final = (536, 1220, 1300, 1440, 1460, 4312, 8960, 65495)
#: RFC 7323 §5.4-style: in a cookie's TSval the low 6 bits carry
#: window scale (4 bits, 15 = none) and SACK-permitted (1 bit), as Linux does.
TS_OPTION_BITS: Final = 6
_TS_WSCALE_NONE: Final = 0xF

_TUPLE: Final = struct.Struct("!HH")
#: BLAKE2s (RFC 7693) keyed with a 32-byte secret, truncated to 32 bits.
_DIGEST_SIZE: Final = 4


def _keyed(key: bytes) -> hashlib.blake2s:
    """A BLAKE2s state keyed with ``key``, nothing hashed yet."""
    return hashlib.blake2s(key=key, digest_size=_DIGEST_SIZE)


class KeyedHashes:
    """The per-stack secrets and the functions keyed with them."""

    __slots__ = ("_cookie_keyed", "_isn_keyed", "_port_keyed")

    def __init__(self, rng: RandomSource) -> None:
        # Each key's BLAKE2s state, keyed once (the key is compressed as a first block);
        # a hash copies it instead of keying a new one.
        self._isn_keyed = _keyed(rng.getrandbits(256).to_bytes(32, "big"))
        self._port_keyed = _keyed(rng.getrandbits(256).to_bytes(32, "big"))
        self._cookie_keyed = _keyed(rng.getrandbits(256).to_bytes(32, "big"))

    @staticmethod
    def _hash(keyed: hashlib.blake2s, *parts: bytes) -> int:
        state = keyed.copy()
        state.update(b"".join(parts))
        return int.from_bytes(state.digest(), "big")

    def initial_sequence(
        self, local: bytes, local_port: int, remote: bytes, remote_port: int, now: float
    ) -> int:
        """RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey)."""
        ticks = int(now * _ISN_TICKS_PER_SECOND)
        keyed = self._hash(self._isn_keyed, local, remote, _TUPLE.pack(local_port, remote_port))
        return (ticks + keyed) & _SEQ_MASK

    def port_offset(self, local: bytes, remote: bytes, remote_port: int) -> int:
        """RFC 6056 §3.3.3 (algorithm 3): F(local_IP, remote_IP, remote_port, secret_key)."""
        return self._hash(self._port_keyed, local, remote, _TUPLE.pack(0, remote_port))

    def timestamp_offset(
        self, local: bytes, remote: bytes, local_port: int, remote_port: int
    ) -> int:
        """RFC 7323 §5.4: a per-connection random offset for TSval."""
        return self._hash(
            self._port_keyed, b"ts", local, remote, _TUPLE.pack(local_port, remote_port)
        )

    # --- SYN cookies (RFC 4987 §3.6) ---------------------------------------------------

    def _cookie_hash(  # noqa: PLR0917
        self,
        local: bytes,
        local_port: int,
        remote: bytes,
        remote_port: int,
        client_isn: int,
        counter: int,
    ) -> int:
        return (
            self._hash(
                self._cookie_keyed,
                local,
                remote,
                _TUPLE.pack(local_port, remote_port),
                client_isn.to_bytes(4, "big"),
                bytes((counter,)),
            )
            & _COOKIE_HASH_MASK
        )

    def make_cookie(  # noqa: PLR0917
        self,
        local: bytes,
        local_port: int,
        remote: bytes,
        remote_port: int,
        client_isn: int,
        mss: int,
        now: float,
    ) -> tuple[int, int]:
        """Return (our ISN encoding the cookie, MSS actually encoded)."""
        counter = int(now // _COOKIE_PERIOD) & ((1 << _COOKIE_COUNTER_BITS) - 1)
        index = 0
        for candidate_index, candidate in enumerate(COOKIE_MSS_TABLE):
            if candidate <= mss:
                index = candidate_index
        digest = self._cookie_hash(local, local_port, remote, remote_port, client_isn, counter)
        return (counter << 27) | (index << 24) | digest, COOKIE_MSS_TABLE[index]

    def check_cookie(  # noqa: PLR0917
        self,
        local: bytes,
        local_port: int,
        remote: bytes,
        remote_port: int,
        client_isn: int,
        cookie: int,
        now: float,
    ) -> int | None:
        """Return the MSS a valid, fresh cookie encodes, else None."""
        counter = cookie >> 27
        current = int(now // _COOKIE_PERIOD) & ((1 << _COOKIE_COUNTER_BITS) - 1)
        if (current - counter) % (1 << _COOKIE_COUNTER_BITS) > _COOKIE_MAX_AGE:
            return None
        digest = self._cookie_hash(local, local_port, remote, remote_port, client_isn, counter)
        if digest != cookie & _COOKIE_HASH_MASK:
            return None
        return COOKIE_MSS_TABLE[(cookie >> 24) & 0x7]

    @staticmethod
    def encode_cookie_timestamp(tsval: int, window_scale: int | None, sack: bool) -> int:
        """Put window scale and SACK-permitted into TSval's low bits (never ahead of the clock)."""
        bits = (_TS_WSCALE_NONE if window_scale is None else window_scale) | (0x10 if sack else 0)
        encoded = (tsval & ~((1 << TS_OPTION_BITS) - 1)) | bits
        if ((encoded - tsval) & _SEQ_MASK) < (1 << 31) and encoded != tsval:
            encoded -= 1 << TS_OPTION_BITS
        return encoded & _SEQ_MASK

    @staticmethod
    def decode_cookie_timestamp(tsecr: int) -> tuple[int | None, bool]:
        """Inverse of :meth:`encode_cookie_timestamp`: (window scale or None, SACK-permitted)."""
        scale = tsecr & 0xF
        return (None if scale == _TS_WSCALE_NONE else scale), bool(tsecr & 0x10)
