"""ICMP policy: what errors mean to users, and how often we may send them."""

from __future__ import annotations

import errno
from typing import Final

from ..wire import icmpv4, icmpv6

__all__ = ["IcmpRateLimiter", "icmpv4_error_to_oserror", "icmpv6_error_to_oserror"]

#: Destination-unreachable codes mapped to errno as Linux does (net/ipv4/icmp.c
#: ``icmp_err_convert``), so users see what they would see over the kernel.
_UNREACHABLE_ERRNO: Final = {
    0: errno.ENETUNREACH,   # net unreachable
    1: errno.EHOSTUNREACH,  # host unreachable
    2: errno.ENOPROTOOPT,   # protocol unreachable
    3: errno.ECONNREFUSED,  # port unreachable
    4: errno.EMSGSIZE,      # fragmentation needed and DF set (RFC 1191)
    5: errno.EOPNOTSUPP,    # source route failed
    6: errno.ENETUNREACH,   # destination network unknown (RFC 1122 §3.2.2.1)
    7: errno.EHOSTDOWN,     # destination host unknown
    8: errno.ENONET,        # source host isolated
    9: errno.ENETUNREACH,   # network administratively prohibited
    10: errno.EHOSTUNREACH,  # host administratively prohibited
    11: errno.ENETUNREACH,  # network unreachable for TOS
    12: errno.EHOSTUNREACH,  # host unreachable for TOS
    13: errno.EHOSTUNREACH,  # communication administratively prohibited (RFC 1812)
}  # fmt: skip


def icmpv4_error_to_oserror(icmp_type: int, code: int) -> OSError:
    """Return the ``OSError`` (with its builtin subclass) a user should see."""
    if icmp_type == icmpv4.TYPE_DESTINATION_UNREACHABLE:
        number = _UNREACHABLE_ERRNO.get(code, errno.EHOSTUNREACH)
        detail = f"ICMP destination unreachable (code {code})"
    else:  # time exceeded: Linux reports EHOSTUNREACH
        number = errno.EHOSTUNREACH
        detail = f"ICMP time exceeded (code {code})"
    return OSError(number, f"{detail}: {errno.errorcode.get(number, number)}")


#: ICMPv6 destination-unreachable codes (RFC 4443 §3.1) as Linux maps them
#: (net/ipv6/icmp.c ``tab_unreach``).
_UNREACHABLE_ERRNO_V6: Final = {
    0: errno.ENETUNREACH,   # no route to destination
    1: errno.EACCES,        # communication administratively prohibited
    2: errno.EHOSTUNREACH,  # beyond scope of source address
    3: errno.EHOSTUNREACH,  # address unreachable
    4: errno.ECONNREFUSED,  # port unreachable
    5: errno.EACCES,        # source address failed ingress/egress policy
    6: errno.EACCES,        # reject route to destination
}  # fmt: skip


def icmpv6_error_to_oserror(icmp_type: int, code: int) -> OSError:
    """The ``OSError`` for an ICMPv6 error, as Linux's ``icmpv6_err_convert`` gives it."""
    if icmp_type == icmpv6.TYPE_DESTINATION_UNREACHABLE:
        number = _UNREACHABLE_ERRNO_V6.get(code, errno.EHOSTUNREACH)
        detail = f"ICMPv6 destination unreachable (code {code})"
    elif icmp_type == icmpv6.TYPE_PACKET_TOO_BIG:
        number, detail = errno.EMSGSIZE, "ICMPv6 packet too big"
    elif icmp_type == icmpv6.TYPE_PARAMETER_PROBLEM:
        number, detail = errno.EPROTO, f"ICMPv6 parameter problem (code {code})"
    else:
        number, detail = errno.EHOSTUNREACH, f"ICMPv6 time exceeded (code {code})"
    return OSError(number, f"{detail}: {errno.errorcode.get(number, number)}")


class IcmpRateLimiter:
    """Token bucket for the ICMP errors we send (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f))."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """Take a token if one is available at ``now``."""
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
