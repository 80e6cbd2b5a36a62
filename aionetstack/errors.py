"""Error types.

Two families, kept apart on purpose:

* *local misuse* (bad arguments) raises the builtin ``ValueError``/``TypeError``
  with a message saying what was wrong, and transport failures reach users as the
  builtin ``OSError`` subclasses (``ConnectionRefusedError``, ``TimeoutError`` ...);
* *remote misbehaviour* (malformed bytes from the network) raises
  :class:`WireError` inside the wire layer only. The core catches it, drops the
  packet and counts it: it never reaches an event loop.
"""

from __future__ import annotations

from .wire.error import WireError

__all__ = ["AionetstackError", "LinkGoneError", "MissingPrivilegeError", "WireError"]


class AionetstackError(Exception):
    """Base class of the package's own exceptions."""


class MissingPrivilegeError(AionetstackError, PermissionError):
    """An operation needs a Linux capability the process does not have."""


class LinkGoneError(AionetstackError, OSError):
    """The link's device failed for good while in use (a TUN deleted under the stack).

    ``errno`` is the one the device returned (``EBADFD`` for a deleted TUN). A
    link that is only down (``ip link set ... down``) does not raise this: its
    packets are dropped and counted until it comes back up.
    """
