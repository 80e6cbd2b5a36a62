"""``getaddrinfo``/``getnameinfo`` over the stack's resolver, in ``loop.getaddrinfo``'s shape.

Loop-independent (``resolve`` is any async function), so both drivers use it:
``aio`` (``Stack.getaddrinfo``, the loop factory) and ``anyio`` (``AnyioStack.getaddrinfo``,
trio's hostname resolver). It uses the C library only for numeric conversions.

Numeric hosts and services never cause a query: the C library turns them into
tuples with ``AI_NUMERICHOST`` (no network, no name service involved), so the
result has exactly the fields, order and errors ``loop.getaddrinfo`` gives. A
name is resolved by the stack (hosts table, cache, then DNS over the stack);
each address is then expanded the same numeric way. Failures raise
``socket.gaierror`` with the C library's code: ``EAI_NONAME`` (no such name,
or no address of the family), ``EAI_AGAIN`` (timeouts, server failures),
``EAI_FAMILY``, ``EAI_SERVICE``.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, cast

from .core.addresses import text_address
from .names import AAAA, A, Lookup, Outcome, normalize_name

__all__ = ["AddrInfo", "getaddrinfo", "getnameinfo", "host_text"]

AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]
Resolve = Callable[[str, Sequence[int]], Awaitable[Lookup]]

#: glibc's gai_strerror texts, so messages read as the kernel path's do.
_MESSAGES = {
    socket.EAI_NONAME: "Name or service not known",
    socket.EAI_AGAIN: "Temporary failure in name resolution",
    socket.EAI_FAMILY: "ai_family not supported",
}
_TYPES: dict[int, int] = {socket.AF_INET: A, socket.AF_INET6: AAAA}


def _error(code: int) -> socket.gaierror:
    return socket.gaierror(code, _MESSAGES[code])


def host_text(host: str | bytes | None) -> str | None:
    """``host`` as text (bytes are IDNA/ASCII, as the socket module takes them)."""
    if isinstance(host, bytes):
        return host.decode("idna")
    if host is not None and not isinstance(host, str):
        raise TypeError(f"host must be a str, bytes or None, got {type(host).__name__}")
    return host


def numeric(
    host: str | None, port: Any, *, family: int, type: int, proto: int, flags: int
) -> list[AddrInfo] | None:
    """The tuples for a numeric host (or None/wildcard); None if ``host`` is a name."""
    try:
        found = socket.getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        return cast(list[AddrInfo], found)
    except socket.gaierror as error:
        if error.errno == socket.EAI_NONAME and host is not None:
            return None  # not an address literal (or a bad service: checked before)
        raise


async def getaddrinfo(
    resolve: Resolve,
    host: str | bytes | None,
    port: Any,
    *,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
    local_families: Collection[int] = (socket.AF_INET,),
) -> list[AddrInfo]:
    """``loop.getaddrinfo`` with names resolved by ``resolve`` (the stack's resolver).

    ``local_families`` are the families the stack has an address of: they
    come first in the answer (IPv6 before IPv4 among them, RFC 6724 §10.3's
    default policy) and ``AI_ADDRCONFIG`` keeps only those.
    """
    if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
        raise _error(socket.EAI_FAMILY)
    text = host_text(host)
    addrconfig = bool(flags & socket.AI_ADDRCONFIG)
    # The stack's addresses are what AI_ADDRCONFIG is about, not the kernel's: the C
    # library never sees the flag (in a namespace with only lo it would refuse everything).
    flags &= ~socket.AI_ADDRCONFIG
    # The service first, on a literal: EAI_SERVICE without a query.
    _expansion(socket.AF_INET, port, type, proto, flags & socket.AI_NUMERICSERV)
    found = (
        None
        if _is_name(text)
        else numeric(text, port, family=family, type=type, proto=proto, flags=flags)
    )
    if found is not None:
        if addrconfig:
            found = [info for info in found if info[0] in local_families]
            if not found:
                raise _error(socket.EAI_NONAME)
        return found
    assert text is not None
    if flags & socket.AI_NUMERICHOST:
        raise _error(socket.EAI_NONAME)
    families = [family] if family else [socket.AF_INET6, socket.AF_INET]
    families.sort(key=lambda f: f not in local_families)
    if addrconfig:
        families = [f for f in families if f in local_families]
        if not families:
            raise _error(socket.EAI_NONAME)
    text.encode("idna")  # UnicodeError for what the socket module refuses to encode, as it
    try:
        normalize_name(text)
        lookup = await resolve(text, [_TYPES[f] for f in families])
    except ValueError:
        raise _error(socket.EAI_NONAME) from None
    except RuntimeError:
        raise _error(socket.EAI_AGAIN) from None
    result: list[AddrInfo] = []
    canonical = ""
    for f in families:
        answer = lookup.answers[_TYPES[f]]
        canonical = canonical or answer.canonical_name
        if not answer.addresses:
            continue
        template = _expansion(f, port, type, proto, flags & ~socket.AI_CANONNAME)
        for address in answer.addresses:
            text_form = text_address(address)
            result.extend((af, kind, number, name, (text_form, *sockaddr[1:]))
                          for af, kind, number, name, sockaddr in template)  # fmt: skip
    if not result:
        outcomes = {answer.outcome for answer in lookup.answers.values()}
        if Outcome.NXDOMAIN not in outcomes and outcomes & {Outcome.TIMEOUT,
                                                             Outcome.SERVER_FAILURE}:  # fmt: skip
            raise _error(socket.EAI_AGAIN)
        raise _error(socket.EAI_NONAME)
    if flags & socket.AI_CANONNAME:
        first = result[0]
        result[0] = (first[0], first[1], first[2], canonical or text, first[4])
    return result


#: Characters of a numeric host in any form the C library takes (dotted quad, inet_aton's
#: hex and short forms, IPv6); a host with any other (and no ``%`` scope) is a name.
_NUMERIC_CHARACTERS = frozenset("0123456789abcdefABCDEFxX.:")


def _is_name(host: str | None) -> bool:
    """Surely not an address literal (so the C library need not be asked)."""
    return host is not None and "%" not in host and not set(host) <= _NUMERIC_CHARACTERS


@functools.lru_cache(maxsize=256)
def _expansion(family: int, port: Any, type: int, proto: int, flags: int) -> tuple[AddrInfo, ...]:
    """The C library's tuples for the family's wildcard address; a resolved address takes
    its place in each sockaddr (the rest depends only on family, port, type, proto, flags).
    Raises ``socket.gaierror`` (EAI_SERVICE ...) for a bad service, which is not cached."""
    wildcard = "0.0.0.0" if family == socket.AF_INET else "::"
    found = socket.getaddrinfo(wildcard, port, family, type, proto, flags | socket.AI_NUMERICHOST)
    return tuple(cast(list[AddrInfo], found))


def getnameinfo(
    reverse: Callable[[bytes], str | None], sockaddr: tuple[Any, ...], flags: int = 0
) -> tuple[str, str]:
    """``loop.getnameinfo`` without reverse DNS: a host name only from ``reverse`` (the
    hosts table), otherwise the numeric address (``NI_NAMEREQD``: ``EAI_NONAME``)."""
    host, service = socket.getnameinfo(sockaddr, flags | socket.NI_NUMERICHOST)
    if flags & socket.NI_NUMERICHOST:
        return host, service
    import ipaddress

    try:
        packed = ipaddress.ip_address(host.split("%")[0]).packed
    except ValueError:
        packed = b""
    name = reverse(packed) if packed else None
    if name is None:
        if flags & socket.NI_NAMEREQD:
            raise _error(socket.EAI_NONAME)
        return host, service
    if flags & socket.NI_NOFQDN:
        name = name.split(".")[0]
    return name, service
