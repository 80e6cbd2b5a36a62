"""The hosts table: names answered without a query (as ``/etc/hosts`` is, before DNS)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

__all__ = ["HostsTable", "normalize_name"]

#: RFC 1035 §2.3.4: a name is at most 255 octets on the wire (253 characters of text).
MAX_NAME_LENGTH = 253


def normalize_name(name: str) -> str:
    """Lower-case ``name`` without its trailing dot; ValueError if it cannot be a host name."""
    if not isinstance(name, str):
        raise TypeError(f"a host name must be a str, got {type(name).__name__}")
    text = name.rstrip(".").lower() if name != "." else name
    if not text or len(text) > MAX_NAME_LENGTH or any(not label for label in text.split(".")):
        raise ValueError(f"not a host name: {name!r}")
    return text


class HostsTable:
    """Name -> addresses (packed, in the order given), both families in one entry.

    ``entries`` maps a name to one address or a list of them, as text
    (``{"web.test": "198.18.0.1", "both.test": ["198.18.0.1", "2001:2::1"]}``).
    Names compare case-insensitively and without a trailing dot.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, str | Iterable[str]] | None = None) -> None:
        self._entries: dict[str, tuple[bytes, ...]] = {}
        for name, value in (entries or {}).items():
            self.add(name, value)

    def add(self, name: str, addresses: str | Iterable[str]) -> None:
        """Add (or extend) the entry of ``name``."""
        texts = [addresses] if isinstance(addresses, str) else list(addresses)
        packed: list[bytes] = []
        for text in texts:
            try:
                packed.append(ipaddress.ip_address(text).packed)
            except ValueError:
                raise ValueError(f"hosts entry {name!r}: not an IP address: {text!r}") from None
        key = normalize_name(name)
        self._entries[key] = self._entries.get(key, ()) + tuple(packed)

    def lookup(self, name: str) -> tuple[bytes, ...] | None:
        """Every address of ``name`` (``None`` if the table does not know it)."""
        return self._entries.get(name)

    def reverse(self, address: bytes) -> str | None:
        """The first name whose entry holds ``address`` (for ``getnameinfo``)."""
        for name, addresses in self._entries.items():
            if address in addresses:
                return name
        return None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
