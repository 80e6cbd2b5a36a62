"""Address conversion at the API edge (shared with the anyio faces: ``core/addresses.py``)."""

from __future__ import annotations

from ..core.addresses import ip_literal, parse_endpoint, text_address

__all__ = ["ip_literal", "parse_endpoint", "text_address"]
