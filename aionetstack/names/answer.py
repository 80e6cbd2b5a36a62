"""What a query settled on: addresses, or a final negative status."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Answer", "Outcome"]


class Outcome(enum.Enum):
    """How one query (one name, one type) ended."""

    #: The name has records of the type (``Answer.addresses`` is not empty).
    ADDRESSES = "addresses"
    #: The name exists but has no record of the type (RFC 2308 §2.2, NODATA).
    NO_DATA = "no data"
    #: The name does not exist (RCODE 3, RFC 2308 §2.1).
    NXDOMAIN = "nxdomain"
    #: Every server failed (SERVFAIL, REFUSED, NOTIMP, FORMERR) after every attempt.
    SERVER_FAILURE = "server failure"
    #: No usable answer from any server within the attempts.
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class Answer:
    """The result of one query: outcome, packed addresses, the canonical name, where from."""

    outcome: Outcome
    addresses: tuple[bytes, ...] = ()
    #: The owner name at the end of the CNAME chain (the query name without one).
    canonical_name: str = ""
    #: "hosts", "cache" or "network".
    source: str = "network"

    @property
    def is_final_negative(self) -> bool:
        """NXDOMAIN or NODATA: the DNS answered, and the answer is no."""
        return self.outcome in (Outcome.NXDOMAIN, Outcome.NO_DATA)
