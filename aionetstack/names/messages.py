"""DNS messages through dnspython: the query we send, and what an answer says.

Nothing here is a hand-written codec: dnspython parses and builds, and it
raises on compression-pointer loops, pointers forward, short data, bad counts
and trailing junk. Every such failure becomes :class:`MalformedError`, which the
resolver counts and drops.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from .answer import Answer, Outcome

__all__ = [
    "MAX_ADDRESSES",
    "MAX_CNAME_CHAIN",
    "MalformedError",
    "MismatchError",
    "Reading",
    "build_query",
    "read_response",
]

#: A chain of CNAMEs in one answer longer than this is treated as a loop.
MAX_CNAME_CHAIN = 16
#: Addresses kept from one answer (a 64 KB answer could carry thousands).
MAX_ADDRESSES = 64
#: RFC 1035 §4.2.2: the largest message over TCP (after the 2-byte length).
MAX_MESSAGE = 0xFFFF
#: Rcodes after which the next server is tried (RFC 1035 §7.1; glibc res_send).
RETRY_RCODES = frozenset({dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTIMP,
                          dns.rcode.FORMERR})  # fmt: skip


class MalformedError(Exception):
    """The bytes are not a DNS message dnspython accepts."""


class MismatchError(Exception):
    """A well-formed message that does not answer our query (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def build_query(name: dns.name.Name, rdtype: int, query_id: int) -> bytes:
    """A recursive query (RD set, no EDNS, as glibc's stub sends by default)."""
    message = dns.message.make_query(name, dns.rdatatype.RdataType.make(rdtype), id=query_id)
    return message.to_wire()


@dataclass(frozen=True, slots=True)
class Reading:
    """What one response says: the answer (None if truncated or a retry rcode), its TTL."""

    truncated: bool
    rcode: int
    answer: Answer | None
    ttl: float


def _parse(data: bytes) -> tuple[dns.message.Message, bool]:
    if len(data) > MAX_MESSAGE:
        raise MalformedError("longer than a DNS message can be")
    try:
        message = dns.message.from_wire(data, raise_on_truncation=True)
        return message, False
    except dns.message.Truncated as truncated:
        return truncated.message(), True  # type: ignore[no-untyped-call]
    except (dns.exception.DNSException, ValueError, IndexError, KeyError, EOFError) as error:
        raise MalformedError(f"{type(error).__name__}: {error}") from None


def read_response(data: bytes, query_id: int, name: dns.name.Name, rdtype: int) -> Reading:
    """Check ``data`` answers our query (RFC 5452 §9.1) and say what it answers.

    Raises :class:`MalformedError` or :class:`MismatchError` (reason ``"id"``,
    ``"question"`` or ``"not a response"``) for anything to ignore.
    """
    message, truncated = _parse(data)
    if message.id != query_id:
        raise MismatchError("id")
    if not message.flags & dns.flags.QR:
        raise MismatchError("not a response")
    rcode = message.rcode()
    if len(message.question) != 1:
        # As dnspython's is_response: an error may come with an empty question section.
        if not (len(message.question) == 0 and rcode in RETRY_RCODES):
            raise MismatchError("question")
    else:
        question = message.question[0]
        if (question.name != name or question.rdtype != rdtype
                or question.rdclass != dns.rdataclass.IN):  # fmt: skip
            raise MismatchError("question")
    if truncated or message.flags & dns.flags.TC:
        return Reading(True, rcode, None, 0.0)
    if rcode in RETRY_RCODES:
        return Reading(False, rcode, None, 0.0)
    if rcode == dns.rcode.NXDOMAIN:
        return Reading(False, rcode, Answer(Outcome.NXDOMAIN, (), _text(name)),
                       _negative_ttl(message))  # fmt: skip
    if rcode != dns.rcode.NOERROR:
        return Reading(False, rcode, None, 0.0)  # YXDOMAIN and the like: try elsewhere
    return _addresses(message, name, rdtype)


def _addresses(message: dns.message.Message, name: dns.name.Name, rdtype: int) -> Reading:
    """Follow the CNAME chain inside the answer section, then take the records."""
    owner = name
    ttl = float("inf")
    for _ in range(MAX_CNAME_CHAIN + 1):
        rrset = _find(message, owner, rdtype)
        if rrset is not None:
            ttl = min(ttl, rrset.ttl)
            addresses = tuple(
                ipaddress.ip_address(rdata.address).packed for rdata in list(rrset)[:MAX_ADDRESSES]
            )
            answer = Answer(Outcome.ADDRESSES, addresses, _text(owner))
            return Reading(False, dns.rcode.NOERROR, answer, ttl)
        alias = _find(message, owner, dns.rdatatype.CNAME)
        if alias is None:
            break
        ttl = min(ttl, alias.ttl)
        owner = alias[0].target
    else:
        raise MismatchError("cname loop")
    # NODATA (RFC 2308 §2.2); a CNAME whose target has no records ends here too.
    answer = Answer(Outcome.NO_DATA, (), _text(owner))
    return Reading(False, dns.rcode.NOERROR, answer, _negative_ttl(message))


def _find(
    message: dns.message.Message, owner: dns.name.Name, rdtype: int
) -> dns.rrset.RRset | None:
    for rrset in message.answer:
        if rrset.name == owner and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN:
            return rrset
    return None


def _negative_ttl(message: dns.message.Message) -> float:
    """RFC 2308 §5: min(SOA TTL, SOA MINIMUM) from the authority section; 0 without a SOA."""
    for rrset in message.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, rrset[0].minimum))
    return 0.0


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()
