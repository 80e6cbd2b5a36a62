"""TunLink against the real kernel, each test inside a network namespace of its own.

Addresses are only from 198.18.0.0/15, and the namespace (with every device in
it) is deleted after each test. Argument checks and error mapping are tested
without a device, with python-pytun replaced by a fake that fails the test if
a device would be opened.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import select
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytun

from aionetstack.errors import LinkGoneError, MissingPrivilegeError
from aionetstack.link import tun as tun_module
from aionetstack.link import tun_path
from aionetstack.link.base import Link
from aionetstack.link.tun import TUN_F_CSUM, TunLink
from aionetstack.testing.netns import Namespace
from aionetstack.wire.icmpv4 import TYPE_ECHO_REPLY, build_echo, parse_icmpv4
from aionetstack.wire.ipv4 import PROTO_ICMP, PROTO_UDP, IPv4Header, build_ipv4, parse_ipv4

REPO = Path(__file__).resolve().parents[2]
KERNEL = socket.inet_aton("198.18.0.1")
STACK = socket.inet_aton("198.18.0.2")
#: ``include/uapi/linux/udp.h``: send one buffer as segments of this size (GSO).
UDP_SEGMENT = 103


def wait_for(link: TunLink, wanted: Callable[[bytes], bool], timeout: float = 3.0) -> bytes:
    """The first packet from ``link`` that ``wanted`` accepts, polling its fd with select."""
    deadline = time.monotonic() + timeout
    for _ in range(10_000):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        select.select([link.fileno()], [], [], remaining)
        for packet in link.receive_batch(64, time.monotonic()):
            if wanted(packet):
                return packet
    raise AssertionError(f"no matching packet within {timeout} s")


def is_udp_to(port: int, payload: bytes) -> Callable[[bytes], bool]:
    def wanted(packet: bytes) -> bool:
        if packet[0] >> 4 != 4:
            return False  # the kernel's IPv6 chatter (router solicitations ...)
        header, body = parse_ipv4(packet)
        return (
            header.protocol == PROTO_UDP
            and int.from_bytes(body[2:4], "big") == port
            and bytes(body[8:]) == payload
        )

    return wanted


def is_echo_reply(identifier: int) -> Callable[[bytes], bool]:
    def wanted(packet: bytes) -> bool:
        if packet[0] >> 4 != 4:
            return False
        header, body = parse_ipv4(packet)
        if header.protocol != PROTO_ICMP:
            return False
        message = parse_icmpv4(body)
        return message.type == TYPE_ECHO_REPLY and message.identifier == identifier

    return wanted


def echo_request(source: bytes, destination: bytes, identifier: int) -> bytes:
    icmp = build_echo(reply=False, identifier=identifier, sequence=1, payload=b"aionetstack")
    return build_ipv4(IPv4Header(source=source, destination=destination, protocol=PROTO_ICMP), icmp)


def ip(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` in this thread's namespace (a child process inherits it)."""
    return subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30, check=False)


def device_exists(name: str) -> bool:
    return ip("link", "show", name).returncode == 0


@pytest.fixture
def tun_factory(netns: Namespace) -> Iterator[Callable[..., TunLink]]:
    """Open TunLinks inside the test's namespace and close them afterwards."""
    opened: list[TunLink] = []

    def factory(*args: object, **kwargs: object) -> TunLink:
        link = TunLink(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(link)
        return link

    yield factory
    for link in opened:
        link.close()


# -- against the kernel -----------------------------------------------------------------------


@pytest.mark.tun
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
def test_udp_from_a_kernel_socket_arrives(
    tun_factory: Callable[..., TunLink], offload: bool
) -> None:
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=offload)
    assert isinstance(link, Link)
    assert link.created
    assert link.receive_checksums_partial is offload
    assert bool(link.offload_flags & TUN_F_CSUM) is offload
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"over the tun", ("198.18.0.2", 9999))
        packet = wait_for(link, is_udp_to(9999, b"over the tun"))
    assert packet[0] == 0x45  # an IPv4 header first: any vnet header was stripped
    header, _ = parse_ipv4(packet)
    assert (header.source, header.destination) == (KERNEL, STACK)
    assert link.statistics()["received_packets"] >= 1


@pytest.mark.tun
@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
def test_the_kernel_answers_an_echo_request(
    tun_factory: Callable[..., TunLink], offload: bool
) -> None:
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=offload)
    request = echo_request(STACK, KERNEL, identifier=0xBEEF)
    link.send(request, time.monotonic())
    reply = wait_for(link, is_echo_reply(0xBEEF))
    header, body = parse_ipv4(reply)
    assert (header.source, header.destination) == (KERNEL, STACK)
    assert parse_icmpv4(body).payload == b"aionetstack"
    stats = link.statistics()
    assert stats["sent_packets"] == 1
    assert stats["sent_bytes"] == len(request)


@pytest.mark.tun
def test_creating_configures_the_kernel_side_and_close_removes_it(
    tun_factory: Callable[..., TunLink],
) -> None:
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", mtu=1400)
    shown = ip("-4", "addr", "show", "dev", "aionst0").stdout
    assert "198.18.0.1/24" in shown
    assert "mtu 1400" in shown
    assert ",UP" in shown
    assert fcntl.fcntl(link.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
    link.close()
    link.close()  # idempotent
    assert link.closed
    with pytest.raises(ValueError, match="closed"):
        link.fileno()
    with pytest.raises(ValueError, match="closed"):
        link.send(b"\x45" + bytes(19), 0.0)
    assert not device_exists("aionst0")


@pytest.mark.tun
def test_persist_keeps_the_device_after_close(tun_factory: Callable[..., TunLink]) -> None:
    link = tun_factory("aionst0", persist=True)
    link.close()
    assert device_exists("aionst0")
    assert ip("tuntap", "del", "mode", "tun", "name", "aionst0").returncode == 0


@pytest.mark.tun
def test_attaches_to_a_precreated_persistent_tun(tun_factory: Callable[..., TunLink]) -> None:
    assert ip("tuntap", "add", "mode", "tun", "name", "aionst1").returncode == 0
    assert ip("addr", "add", "198.18.1.1/24", "dev", "aionst1").returncode == 0
    assert ip("link", "set", "aionst1", "up").returncode == 0
    link = tun_factory("aionst1")
    assert not link.created
    link.send(echo_request(bytes([198, 18, 1, 2]), bytes([198, 18, 1, 1]), 0x0A0A), 0.0)
    wait_for(link, is_echo_reply(0x0A0A))
    link.close()
    assert device_exists("aionst1")  # persistent devices stay


@pytest.mark.tun
def test_send_failures_are_counted_not_raised(
    tun_factory: Callable[..., TunLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=False)
    link.send(b"\x00" * 20, 0.0)  # not IP: the kernel says EINVAL
    assert link.statistics()["send_rejected"] == 1

    def refuse(code: int) -> Callable[..., int]:
        def write(fd: int, head: object, packet: object, tail: object) -> int:
            raise OSError(code, os.strerror(code))

        return write

    packet = echo_request(STACK, KERNEL, 1)
    for code in (errno.EAGAIN, errno.ENOBUFS):
        with monkeypatch.context() as patch:
            patch.setattr(tun_path, "write_packet", refuse(code))
            link.send(packet, 0.0)
    assert link.statistics()["send_dropped"] == 2
    with monkeypatch.context() as patch:  # the interface is down: dropped and counted
        patch.setattr(tun_path, "write_packet", refuse(errno.EIO))
        link.send(packet, 0.0)
    assert link.statistics()["send_link_down"] == 1
    with monkeypatch.context() as patch, pytest.raises(LinkGoneError, match="is gone"):
        patch.setattr(tun_path, "write_packet", refuse(errno.EBADFD))  # the device was deleted
        link.send(packet, 0.0)
    assert link.statistics()["sent_packets"] == 0


@pytest.mark.tun
def test_read_failures_are_counted_or_raised_as_the_device_gone(
    tun_factory: Callable[..., TunLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty queue ends a batch quietly; a down interface (EIO) is a counted
    receive error; a deleted device is LinkGoneError."""
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=False)
    with monkeypatch.context() as patch:  # the queue is empty: no error, nothing counted
        patch.setattr(tun_path, "read_packet", lambda fd, buffer: None)
        assert link.receive_batch(8, 0.0) == []
    assert link.statistics()["receive_errors"] == 0

    def refuse(code: int) -> Callable[..., int]:
        def read(fd: int, buffer: object) -> int:
            raise OSError(code, os.strerror(code))

        return read

    with monkeypatch.context() as patch:
        patch.setattr(tun_path, "read_packet", refuse(errno.EIO))
        assert link.receive_batch(8, 0.0) == []
    assert link.statistics()["receive_errors"] == 1
    with monkeypatch.context() as patch, pytest.raises(LinkGoneError, match="is gone"):
        patch.setattr(tun_path, "read_packet", refuse(errno.EBADFD))
        link.receive_batch(8, 0.0)


@pytest.mark.tun
def test_software_gso_failures_are_counted_per_piece(
    tun_factory: Callable[..., TunLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aionetstack.wire.checksum import ones_complement_sum, pseudo_header_sum
    from aionetstack.wire.tcp import ACK, build_tcp

    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=False)
    segment = build_tcp(40000, 9, 1, 1, ACK, 100, payload=bytes(4000))
    pseudo = ones_complement_sum(b"", pseudo_header_sum(STACK, KERNEL, 6, len(segment)))
    segment = segment[:16] + pseudo.to_bytes(2, "big") + segment[18:]
    packet = build_ipv4(IPv4Header(STACK, KERNEL, 6), segment)

    def refuse(fd: int, data: object) -> int:
        raise BlockingIOError(errno.EAGAIN, "full")

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", refuse)
        link.send_offloaded(packet, 1460, 0.0)
    counts = link.statistics()
    assert counts["send_dropped"] == 3 and counts["sent_packets"] == 0
    assert counts["software_gso_packets"] == 1 and counts["software_gso_segments"] == 3
    link.send_offloaded(packet, 1460, 0.0)  # the kernel takes the three pieces
    assert link.statistics()["sent_packets"] == 3
    link.send_offloaded(b"\x00" * 60, 1460, 0.0)  # not IP: rejected, nothing written
    assert link.statistics()["send_rejected"] == 1


@pytest.mark.tun
def test_a_segment_to_cut_is_cut_even_when_it_fits_the_mtu(
    tun_factory: Callable[..., TunLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a path MTU drop the core asks for 1,000-byte pieces of a 1,448-byte segment:
    the device MTU (1,500) must not stop the kernel from cutting it (RFC 1191 §6.3)."""
    from aionetstack.link.tun_io import offload_header
    from aionetstack.wire.tcp import ACK, build_tcp
    from aionetstack.wire.vnet import VIRTIO_NET_HDR_GSO_TCPV4, parse_vnet_header

    link = tun_factory("aionst0", kernel_address="198.18.0.1/24")
    packet = build_ipv4(
        IPv4Header(STACK, KERNEL, 6), build_tcp(40000, 9, 1, 1, ACK, 100, payload=bytes(1448))
    )
    written: list[bytes] = []

    def capture(
        fd: int, packet: bytes, segment_size: int, tail: tuple[bytes, ...], link_header: int
    ) -> int:
        written.append(offload_header(packet, segment_size, link_header))
        return len(packet) + sum(len(b) for b in tail)

    with monkeypatch.context() as patch:
        patch.setattr(tun_path, "write_offloaded", capture)
        link.send_offloaded(packet, 1000, 0.0)
        link.send_offloaded(packet, 0, 0.0)  # 0: one segment, nothing to cut
    cut, whole = (parse_vnet_header(header) for header in written)
    assert cut.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 and cut.gso_size == 1000
    assert whole.gso_size == 0


def fake_ioctl(refused: set[int]) -> Callable[..., object]:
    """Pass every ioctl to the kernel except TUNSETOFFLOAD with a refused mask (EINVAL)."""
    real = fcntl.ioctl

    def ioctl(fd: int, request: int, arg: object = 0, *rest: object) -> object:
        if request == tun_module.TUNSETOFFLOAD and arg in refused:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, request, arg, *rest)  # type: ignore[call-overload]

    return ioctl


@pytest.mark.tun
def test_offload_falls_back_without_uso(
    tun_factory: Callable[..., TunLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(fcntl, "ioctl", fake_ioctl({0x6F}))
        link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=True)
    assert link.offload_flags == 0x0F
    assert link.receive_checksums_partial
    assert link.offload_status == "on (no UDP segmentation)"


@pytest.mark.tun
def test_offload_is_the_default_and_visible(tun_factory: Callable[..., TunLink]) -> None:
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24")
    assert link.transmit_offload and link.receive_checksums_partial
    assert link.offload_flags & TUN_F_CSUM
    assert link.max_packet_size == 65535
    assert link.offload_status.startswith("on")
    assert link.statistics()["offload"] == link.offload_status
    assert f"offload={link.offload_status!r}" in repr(link)


@pytest.mark.tun
def test_offload_off_on_request_is_visible(tun_factory: Callable[..., TunLink]) -> None:
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=False)
    assert not link.receive_checksums_partial
    # Software GSO (link/segmentation.py) takes super-packets and cuts them itself.
    assert link.software_gso and link.transmit_offload
    assert link.max_packet_size == 65535
    assert link.offload_status == "off (requested off)"
    assert link.statistics()["offload"] == "off (requested off)"
    assert "off (requested off)" in repr(link)
    plain = tun_factory("aionst1", offload=False, software_gso=False)
    assert not plain.transmit_offload and plain.max_packet_size == plain.mtu


@pytest.mark.tun
def test_offload_refused_entirely_still_works_with_a_warning(
    tun_factory: Callable[..., TunLink],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, "aionetstack.link.tun"):
        patch.setattr(fcntl, "ioctl", fake_ioctl({0x6F, 0x0F}))
        link = tun_factory("aionst0", kernel_address="198.18.0.1/24")  # the default: offload
    assert link.offload_flags == 0
    assert not link.receive_checksums_partial
    assert any("refused" in record.getMessage() for record in caplog.records)
    status = "off (kernel refused TUNSETOFFLOAD: EINVAL)"
    assert link.offload_status == status
    assert link.statistics()["offload"] == status
    assert status in repr(link)
    link.send(echo_request(STACK, KERNEL, 0x0F0F), 0.0)  # the vnet header is still framed
    reply = wait_for(link, is_echo_reply(0x0F0F))
    assert reply[0] == 0x45


UNPRIVILEGED_PROBE = textwrap.dedent(
    """
    import json
    from aionetstack.errors import MissingPrivilegeError
    from aionetstack.link.tun import TunLink

    def attempt(name, **kwargs):
        try:
            link = TunLink(name, **kwargs)
        except MissingPrivilegeError as exc:
            return "MissingPrivilegeError: " + str(exc)
        created = link.created
        link.close()
        return "created" if created else "attached"

    print(json.dumps({
        "own": attempt("aionst2", kernel_address="198.18.2.1/24"),
        "own_new_address": attempt("aionst2", kernel_address="198.18.2.9/24"),
        "foreign": attempt("aionst3"),
        "create": attempt("aionst4"),
    }))
    """
)


@pytest.mark.tun
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_without_cap_net_admin(netns: Namespace) -> None:
    # aionst2 belongs to this uid (as `ip tuntap add ... user $USER` makes it); aionst3 to nobody.
    uid = str(os.geteuid())
    assert ip("tuntap", "add", "mode", "tun", "user", uid, "name", "aionst2").returncode == 0
    assert ip("addr", "add", "198.18.2.1/24", "dev", "aionst2").returncode == 0
    assert ip("link", "set", "aionst2", "up").returncode == 0
    assert ip("tuntap", "add", "mode", "tun", "user", "65534", "name", "aionst3").returncode == 0
    result = subprocess.run(
        ["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c",
         UNPRIVILEGED_PROBE],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["own"] == "attached"
    assert outcome["own_new_address"].startswith("MissingPrivilegeError")
    assert "CAP_NET_ADMIN" in outcome["own_new_address"]
    assert outcome["foreign"].startswith("MissingPrivilegeError")
    assert "exists" in outcome["foreign"]
    assert outcome["create"].startswith("MissingPrivilegeError")
    assert "CAP_NET_ADMIN" in outcome["create"]
    assert "sudo ip tuntap add mode tun user $USER name aionst4" in outcome["create"]
    assert not device_exists("aionst4")


# -- without a device -----------------------------------------------------------------------------


class _NoDevice:
    """Stands in for pytun.TunTapDevice where no device may be opened."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a TUN device was opened despite bad arguments")


@pytest.fixture
def no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pytun, "TunTapDevice", _NoDevice)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("a" * 16,), {}, ValueError, "at most 15"),
        (("",), {}, ValueError, "empty"),
        (("bad/name",), {}, ValueError, "not a valid interface name"),
        (("bad name",), {}, ValueError, "not a valid interface name"),
        ((".",), {}, ValueError, "not a valid interface name"),
        ((7,), {}, TypeError, "name"),
        ((), {"mtu": 0}, ValueError, "mtu"),
        ((), {"mtu": 65536}, ValueError, "mtu"),
        ((), {"mtu": 1500.0}, TypeError, "mtu"),
        ((), {"kernel_address": "198.18.0.1/33"}, ValueError, "kernel_address"),
        ((), {"kernel_address": "not an address"}, ValueError, "kernel_address"),
        ((), {"kernel_address": 3232235777}, TypeError, "kernel_address"),
        ((), {"kernel_address": "fd00::1/64", "mtu": 1000}, ValueError, "1280"),
    ],
)
@pytest.mark.usefixtures("no_device")
def test_bad_arguments_are_refused_before_any_device_is_touched(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        TunLink(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.usefixtures("no_device")
def test_missing_dev_net_tun_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tun_module, "_TUN_DEVICE", "/nonexistent/net/tun")
    with pytest.raises(FileNotFoundError, match="no /nonexistent/net/tun"):
        TunLink("aionst0")


def test_eperm_on_create_names_the_capability_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise pytun.Error(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(pytun, "TunTapDevice", refuse)
    monkeypatch.setattr(tun_module, "_interface_exists", lambda name: False)
    with pytest.raises(MissingPrivilegeError) as caught:
        TunLink("aionsx0")
    message = str(caught.value)
    assert "CAP_NET_ADMIN" in message
    assert "sudo ip tuntap add mode tun user $USER name aionsx0" in message
    assert "sudo ip addr add 198.18.0.1/24 dev aionsx0 && sudo ip link set aionsx0 up" in message
    assert isinstance(caught.value, PermissionError)


def test_busy_device_is_an_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(*args: object, **kwargs: object) -> None:
        raise pytun.Error(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(pytun, "TunTapDevice", busy)
    monkeypatch.setattr(tun_module, "_interface_exists", lambda name: True)
    with pytest.raises(OSError, match="already open") as caught:
        TunLink("aionsx0")
    assert caught.value.errno == errno.EBUSY


@pytest.mark.tun
def test_offload_hands_over_a_udp_superpacket_whole(tun_factory: Callable[..., TunLink]) -> None:
    link = tun_factory("aionst0", kernel_address="198.18.0.1/24", offload=True)
    if not link.offload_flags & tun_module.TUN_F_USO4:
        pytest.skip("this kernel refused UDP segmentation offload")
    payload = bytes(range(256)) * 50  # 12800 bytes, ten 1280-byte segments
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1280)
        sender.sendto(payload, ("198.18.0.2", 9998))
        packet = wait_for(link, is_udp_to(9998, payload))
    assert len(packet) == 20 + 8 + len(payload) > link.mtu
    assert link.statistics()["received_bytes"] >= len(packet)


@pytest.mark.parametrize("version", [4, 6])
def test_the_flow_primer_of_a_syn_is_an_rst_of_the_same_flow(version: int) -> None:
    """Multi-queue links write it before a SYN (no device needed to build it)."""
    from aionetstack.wire.checksum import internet_checksum, pseudo_header_sum
    from aionetstack.wire.ipv6 import IPv6Header, build_ipv6, parse_ipv6
    from aionetstack.wire.tcp import ACK, RST, SYN, build_tcp, parse_tcp

    if version == 4:
        source, destination = STACK, KERNEL
    else:
        source, destination = (
            bytes.fromhex("20010002" + "00" * 11 + "02"),
            bytes.fromhex("20010002" + "00" * 11 + "01"),
        )
    syn = build_tcp(40000, 80, 12345, 0, SYN, 65535, source=source, destination=destination)
    if version == 4:
        packet = build_ipv4(IPv4Header(source=source, destination=destination, protocol=6), syn)
    else:
        packet = build_ipv6(IPv6Header(source, destination, 6), syn)
    primer = tun_path._flow_primer(packet)
    assert primer is not None
    header, body = parse_ipv4(primer) if version == 4 else parse_ipv6(primer)
    assert (header.source, header.destination) == (source, destination)
    segment = parse_tcp(body)
    assert (segment.source_port, segment.destination_port, segment.seq) == (40000, 80, 12345)
    assert segment.flags == RST and not segment.payload
    assert internet_checksum(body, pseudo_header_sum(source, destination, 6, len(body))) == 0
    synack = build_tcp(
        80, 40000, 1, 12346, SYN | ACK, 65535, source=destination, destination=source
    )
    if version == 4:
        answer = build_ipv4(IPv4Header(source=destination, destination=source, protocol=6), synack)
    else:
        answer = build_ipv6(IPv6Header(destination, source, 6), synack)
    assert tun_path._flow_primer(answer) is None  # only a SYN without ACK is primed
