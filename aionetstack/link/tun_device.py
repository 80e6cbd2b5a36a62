"""Creating, opening and configuring a TUN (or TAP) device: the name and MTU checks, the
TUNSETIFF open (IFF_TUN or IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE) through
python-pytun, offload negotiation (TUNSETOFFLOAD with a logged fallback), and the
kernel side's addresses, MTU, transmit queue and state through ``ip``, with the
privilege error that names CAP_NET_ADMIN.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from functools import partial
from typing import Final

import pytun

from ..errors import MissingPrivilegeError

_log = logging.getLogger(__name__)
#: ioctl numbers and offload bits from ``include/uapi/linux/if_tun.h``.
TUNSETOFFLOAD: Final = 0x400454D0
TUN_F_CSUM: Final = 0x01  # the kernel may hand over and accept partial checksums
TUN_F_TSO4: Final = 0x02
TUN_F_TSO6: Final = 0x04
TUN_F_TSO_ECN: Final = 0x08
TUN_F_USO4: Final = 0x20  # Linux 6.2+
TUN_F_USO6: Final = 0x40
#: What to ask for, best first: with UDP segmentation, then without it.
_OFFLOAD_CHOICES: Final = (
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_USO4 | TUN_F_USO6,
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
)
#: ``include/uapi/linux/if.h``: names are at most IFNAMSIZ - 1 = 15 bytes.
_IFNAMSIZ: Final = 16
_SIOCGIFFLAGS: Final = 0x8913
_IFF_UP: Final = 0x1
#: ``SIOCSIFTXQLEN`` (linux/sockios.h) and its ``struct ifreq`` with an int.
_SIOCSIFTXQLEN: Final = 0x8943
_IFREQ_INT: Final = struct.Struct("16si20x")
#: The kernel-to-TUN queue of a device we create. Linux defaults TUN to 500 packets,
#: which a Python reader cannot drain as fast as the kernel fills it with many flows
#: (every overflow is a loss and a retransmission); limits.md ran with 10000.
TRANSMIT_QUEUE_LENGTH: Final = 10000
_IFF_RUNNING: Final = 0x40  # operationally up: the kernel now transmits into the fd
#: After attaching to a device that is already up, the kernel's link watcher
#: marks it running a little later (tens of ms; at most about one second) and
#: drops what it would send before that. Wait this long at most, polling.
_RUNNING_WAIT: Final = 1.0
_RUNNING_POLL: Final = 0.005
_IFREQ_FLAGS: Final = struct.Struct("16sh22x")
#: RFC 791 §3.2: 68 is the smallest MTU an IPv4 link may have; 65535 is the
#: largest IP total length and the TUN driver's own maximum.
_MIN_MTU: Final = 68
_MAX_MTU: Final = 65535
#: RFC 8200 §5: every link carrying IPv6 has an MTU of at least 1280.
_MIN_IPV6_MTU: Final = 1280
_PRECREATE_HINT: Final = (
    "To use a TUN without privileges, have an administrator create it for your user once:\n"
    "    sudo ip tuntap add mode tun user $USER name {name}\n"
    "    sudo ip addr add 198.18.0.1/24 dev {name} && sudo ip link set {name} up\n"
    "then open it with TunLink({name!r}, kernel_address=None)."
)


def _check_name(name: object) -> None:
    """Linux ``dev_valid_name()``: 1..15 bytes, not '.' or '..', no '/', ':' or whitespace."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    encoded = name.encode()
    if not encoded:
        raise ValueError("name must not be empty")
    if len(encoded) >= _IFNAMSIZ:
        raise ValueError(
            f"interface name {name!r} is {len(encoded)} bytes; Linux allows at most {_IFNAMSIZ - 1}"
        )
    if name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise ValueError(f"{name!r} is not a valid interface name (no '/', ':' or spaces)")


def _check_mtu(mtu: object) -> None:
    if isinstance(mtu, bool) or not isinstance(mtu, int):
        raise TypeError(f"mtu must be an int, got {type(mtu).__name__}")
    if not _MIN_MTU <= mtu <= _MAX_MTU:
        raise ValueError(f"mtu must be in {_MIN_MTU}..{_MAX_MTU} bytes, got {mtu}")


def _parse_kernel_addresses(
    kernel_address: object, mtu: int
) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """One address or a list of them (``["198.18.0.1/24", "2001:2::1/64"]``); None: none."""
    if kernel_address is None:
        return []
    if isinstance(kernel_address, list | tuple):
        return [_parse_kernel_address(text, mtu) for text in kernel_address]
    return [_parse_kernel_address(kernel_address, mtu)]


def _parse_kernel_address(
    kernel_address: object, mtu: int
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if not isinstance(kernel_address, str):
        raise TypeError(
            f"kernel_address must be a str or None, got {type(kernel_address).__name__}"
        )
    try:
        interface = ipaddress.ip_interface(kernel_address)
    except ValueError:
        raise ValueError(
            f"kernel_address {kernel_address!r} is not an address with an optional prefix "
            "such as '198.18.0.1/24'"
        ) from None
    if interface.version == 6 and mtu < _MIN_IPV6_MTU:
        raise ValueError(f"an IPv6 kernel_address needs mtu >= {_MIN_IPV6_MTU}, got {mtu}")
    return interface


def _interface_exists(name: str) -> bool:
    """Whether ``name`` exists in this thread's network namespace (sysfs may show another)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def _open_device(
    name: str, flags: int, existed: bool, multi_queue: bool = False
) -> pytun.TunTapDevice:
    try:
        return pytun.TunTapDevice(name=name, flags=flags)
    except pytun.Error as exc:
        code = exc.errno
        if code in (errno.EPERM, errno.EACCES):
            raise _privilege_error(name, existed) from exc
        if code == errno.EBUSY:
            raise OSError(code, f"TUN {name!r} is already open in another process") from exc
        if code == errno.EINVAL and existed and multi_queue:
            raise OSError(
                code,
                f"interface {name!r} exists but is not a multi-queue TUN (created without "
                "IFF_MULTI_QUEUE, or a TAP), or its queues use another offload setting; "
                f"multi_queue=True needs e.g. 'ip tuntap add mode tun multi_queue name {name}'",
            ) from exc
        if code == errno.EINVAL and existed:
            raise OSError(
                code,
                f"interface {name!r} exists but is not a single-queue TUN (a multi-queue "
                "TUN needs multi_queue=True; or it is a TAP)",
            ) from exc
        if code == errno.EINVAL and multi_queue:
            raise OSError(
                code, f"the kernel refused to create TUN {name!r} with IFF_MULTI_QUEUE: {exc}"
            ) from exc
        raise OSError(code, f"cannot open TUN {name!r}: {exc}") from exc


def _privilege_error(name: str, existed: bool) -> MissingPrivilegeError:
    hint = _PRECREATE_HINT.format(name=name)
    if existed:
        what = (
            f"TUN {name!r} exists but this user may not attach to it: it belongs to another "
            "user or group, and attaching anyway needs CAP_NET_ADMIN."
        )
    else:
        what = f"creating TUN {name!r} needs CAP_NET_ADMIN, which this process does not have."
    return MissingPrivilegeError(errno.EPERM, f"{what}\n{hint}")


def _decode_name(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _set_nonblocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)


def _negotiate_offload(fd: int, name: str) -> tuple[int, str]:
    """Ask for the best offloads the kernel accepts; return them (0: none) and a status.

    The status is ``"on"``, ``"on (no UDP segmentation)"`` or, when the kernel
    refuses ``TUNSETOFFLOAD`` altogether, ``"off (kernel refused TUNSETOFFLOAD: ...)"``
    with the error's name; that fallback is logged as a warning.
    """
    refusal: OSError | None = None
    for choice in _OFFLOAD_CHOICES:
        try:
            fcntl.ioctl(fd, TUNSETOFFLOAD, choice)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            refusal = exc
            continue
        return choice, "on" if choice & TUN_F_USO4 else "on (no UDP segmentation)"
    code = refusal.errno if refusal is not None and refusal.errno is not None else errno.EINVAL
    status = f"off (kernel refused TUNSETOFFLOAD: {errno.errorcode.get(code, code)})"
    _log.warning(
        "TUN %s: the kernel refused checksum/segmentation offload (%s); running without "
        "it: 1500-byte packets and every checksum computed in Python, several times slower "
        "for bulk data",
        name,
        errno.errorcode.get(code, code),
    )
    return 0, status


def _configure(
    device: pytun.TunTapDevice,
    name: str,
    interfaces: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
    mtu: int,
    existed: bool,
) -> None:
    """Set what was asked for and differs; privilege errors name the missing capability."""
    for interface in interfaces:
        _apply(name, f"set its address {interface}", partial(_set_address, device, name, interface))
    if device.mtu != mtu:
        _apply(name, f"set its MTU to {mtu}", lambda: setattr(device, "mtu", mtu))
    if not existed:
        _apply(name, "set its transmit queue length", lambda: _set_queue_length(name))
    if not _interface_flags(name) & _IFF_UP:
        try:
            _apply(name, "bring it up", device.up)
        except MissingPrivilegeError:
            if not existed:
                raise
            _log.warning("TUN %s is down and this process may not bring it up", name)
            return
    _wait_until_running(name)


def _apply(name: str, what: str, action: Callable[[], object]) -> None:
    """Run ``action``; turn the kernel's EPERM into a :class:`MissingPrivilegeError`."""
    try:
        action()
    except OSError as exc:  # pytun.Error is an OSError too
        if exc.errno not in (errno.EPERM, errno.EACCES):
            raise
        raise MissingPrivilegeError(
            errno.EPERM,
            f"TUN {name!r}: to {what} needs CAP_NET_ADMIN. Pass kernel_address=None "
            "and the device's own MTU to use it as it is configured.\n"
            + _PRECREATE_HINT.format(name=name),
        ) from exc


def _set_address(
    device: pytun.TunTapDevice,
    name: str,
    interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface,
) -> None:
    if interface.version == 4:
        if _current_ipv4(device) == (str(interface.ip), str(interface.netmask)):
            return  # already so: nothing to change, no privilege needed
        device.addr = str(interface.ip)
        device.netmask = str(interface.netmask)
        return
    result = subprocess.run(
        # nodad: usable at once (no duplicate address detection on a point-to-point TUN).
        ["ip", "-6", "addr", "replace", str(interface), "dev", name, "nodad"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        message = result.stderr.strip()
        if "not permitted" in message.lower():
            raise PermissionError(errno.EPERM, message)
        raise OSError(f"ip -6 addr replace {interface} dev {name}: {message}")


def _current_ipv4(device: pytun.TunTapDevice) -> tuple[str, str] | None:
    try:
        return str(device.addr), str(device.netmask)
    except pytun.Error:
        return None  # no address yet


def _set_queue_length(name: str, length: int = TRANSMIT_QUEUE_LENGTH) -> None:
    """``SIOCSIFTXQLEN``: how many packets the kernel queues towards the TUN reader."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        fcntl.ioctl(probe.fileno(), _SIOCSIFTXQLEN, _IFREQ_INT.pack(name.encode(), length))


def _interface_flags(name: str) -> int:
    """``SIOCGIFFLAGS`` of ``name`` in this thread's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = _IFREQ_FLAGS.pack(name.encode(), 0)
        answer = fcntl.ioctl(probe.fileno(), _SIOCGIFFLAGS, request)
    flags: int = _IFREQ_FLAGS.unpack(answer)[1]
    return flags & 0xFFFF


def _wait_until_running(name: str) -> None:
    """Block (bounded) until the kernel transmits into the device, so no first packet is lost."""
    deadline = time.monotonic() + _RUNNING_WAIT
    while not _interface_flags(name) & _IFF_RUNNING:
        if time.monotonic() >= deadline:
            _log.warning("TUN %s is up but not running after %.1f s", name, _RUNNING_WAIT)
            return
        time.sleep(_RUNNING_POLL)
