"""Run code inside a network namespace made for it, and delete it afterwards.

Every test or benchmark that creates a TUN or sends packets goes through
:func:`network_namespace`: nothing it does can reach a real network. The
calling *thread* moves into the namespace (``setns``), so sockets, TUN devices
and subprocesses it creates live there; on exit it moves back and the
namespace is deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence

__all__ = ["NamespaceUnavailableError", "namespace_support", "network_namespace"]

_CLONE_NEWNET = 0x40000000
_counter = itertools.count()


class NamespaceUnavailableError(RuntimeError):
    """Network namespaces cannot be made here (no root, no ``ip`` tool ...)."""


def namespace_support() -> str | None:
    """Return ``None`` when namespaces and TUN can be used, else why not."""
    if os.geteuid() != 0:
        return "needs root (CAP_SYS_ADMIN for a network namespace, CAP_NET_ADMIN for a TUN)"
    if shutil.which("ip") is None:
        return "needs the 'ip' tool from iproute2"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns(CLONE_NEWNET) failed: {os.strerror(errno)}")


class Namespace:
    """A live namespace; ``run`` executes a command inside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the namespace and return its completed process (text mode)."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            check=check, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


@contextlib.contextmanager
def network_namespace(prefix: str = "aions") -> Iterator[Namespace]:
    """Create a namespace with ``lo`` up, enter it in this thread, and clean up.

    Raises :class:`NamespaceUnavailableError` if it cannot be made.
    """
    reason = namespace_support()
    if reason:
        raise NamespaceUnavailableError(reason)
    name = f"{prefix}-{os.getpid()}-{next(_counter)}"
    command = ["ip", "netns", "add", name]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NamespaceUnavailableError(f"ip netns add {name}: {result.stderr.strip()}")
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield Namespace(name)
        finally:
            _setns(original)
    finally:
        os.close(original)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
