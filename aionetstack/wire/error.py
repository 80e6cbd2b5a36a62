"""The wire layer's one exception (re-exported as ``aionetstack.errors.WireError``)."""

from __future__ import annotations

__all__ = ["WireError"]


class WireError(ValueError):
    """Bytes that do not parse as the format asked for.

    The only exception a ``wire`` parser raises, whatever the input.
    ``reason`` is a short tag the core uses as its drop-counter key
    (``"truncated"``, ``"bad_checksum"``, ``"bad_version"`` ...).
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason
