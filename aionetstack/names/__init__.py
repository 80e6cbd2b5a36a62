"""Names: the stub resolver as a sans-I/O machine, the hosts table and the answer cache.

dnspython builds and parses the messages; nothing here does I/O or reads a
clock (``aio/resolver.py`` drives it on an asyncio loop).
"""

from __future__ import annotations

from .answer import Answer, Outcome
from .cache import AnswerCache
from .hosts import HostsTable, normalize_name
from .resolver import (
    AAAA,
    DNS_PORT,
    A,
    Lookup,
    OpenStream,
    Release,
    SendDatagram,
    StubResolver,
    parse_nameserver,
)

__all__ = [
    "AAAA",
    "DNS_PORT",
    "A",
    "Answer",
    "AnswerCache",
    "HostsTable",
    "Lookup",
    "OpenStream",
    "Outcome",
    "Release",
    "SendDatagram",
    "StubResolver",
    "normalize_name",
    "parse_nameserver",
]
