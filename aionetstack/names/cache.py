"""The answer cache: positive answers for their TTL, negative ones per RFC 2308.

Sans-I/O: every call takes ``now``. Bounded: at most ``size`` entries; when
full, expired entries go first, then the oldest.
"""

from __future__ import annotations

from dataclasses import replace

from .answer import Answer, Outcome

__all__ = ["NXDOMAIN_TYPE", "AnswerCache"]

#: The cache key's type for NXDOMAIN: RFC 2308 §5, a name error covers every type.
NXDOMAIN_TYPE = 0


class AnswerCache:
    """``(name, rdtype) -> Answer`` with an expiry time each."""

    __slots__ = ("_entries", "_max_negative_ttl", "_max_ttl", "_size", "hits", "misses")

    def __init__(self, size: int, max_ttl: float, max_negative_ttl: float) -> None:
        self._entries: dict[tuple[str, int], tuple[float, Answer]] = {}
        self._size = size
        self._max_ttl = max_ttl
        self._max_negative_ttl = max_negative_ttl
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, rdtype: int, now: float) -> Answer | None:
        """The cached answer for ``name``/``rdtype`` (an NXDOMAIN for the name counts)."""
        for key in ((name, NXDOMAIN_TYPE), (name, rdtype)):
            entry = self._entries.get(key)
            if entry is None:
                continue
            expires, answer = entry
            if now >= expires:
                del self._entries[key]
                continue
            self.hits += 1
            return replace(answer, source="cache")
        self.misses += 1
        return None

    def put(self, name: str, rdtype: int, answer: Answer, ttl: float, now: float) -> None:
        """Remember ``answer`` for ``ttl`` seconds (capped); a TTL of 0 is not cached.

        Only ADDRESSES, NO_DATA and NXDOMAIN are cached: failures and timeouts
        are not (RFC 2308 §7 allows caching SERVFAIL; a stub gains little).
        """
        if answer.outcome is Outcome.ADDRESSES:
            ttl = min(ttl, self._max_ttl)
        elif answer.is_final_negative:
            ttl = min(ttl, self._max_negative_ttl)  # RFC 2308 §5: one to three hours at most
        else:
            return
        if ttl <= 0 or self._size <= 0:
            return
        key = (name, NXDOMAIN_TYPE if answer.outcome is Outcome.NXDOMAIN else rdtype)
        self._entries.pop(key, None)
        if len(self._entries) >= self._size:
            self._evict(now)
        self._entries[key] = (now + ttl, answer)

    def _evict(self, now: float) -> None:
        expired = [key for key, (expires, _) in self._entries.items() if now >= expires]
        for key in expired:
            del self._entries[key]
        while len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]  # the oldest insertion

    def clear(self) -> None:
        self._entries.clear()
