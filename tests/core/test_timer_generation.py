"""The stack's single deadline is answered from its last answer until a timer source
bumps ``timer_generation``: each source must, or its deadline would be missed.

Each test first lets ``get_timer`` answer (and so cache) with nothing pending, then
has one source set a deadline and checks the next answer has it, with the suite's
check (``StackCore.check_timer_answers``, tests/conftest.py) turned off so that the
cached answer is what is returned.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from aionetstack.config import StackConfig
from aionetstack.core.fragments import IPV4_TIMEOUT, IPV6_TIMEOUT
from aionetstack.core.stack import StackCore
from aionetstack.core.timer_generation import TIMER_ANSWER_CHECK
from aionetstack.testing.segments import make_segment
from aionetstack.wire import ipv4, udp
from aionetstack.wire.tcp import SYN, build_options

US = bytes([198, 18, 0, 2])
US6 = bytes.fromhex("20010002000000000000000000000002")
PEER6 = bytes.fromhex("20010002000000000000000000000001")
PEER = bytes([198, 18, 0, 1])
INTERCEPTED = bytes([198, 19, 7, 7])
NOW = 10.0


@pytest.fixture(autouse=True)
def _answers_reused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(TIMER_ANSWER_CHECK, "enabled", False)
    yield


def idle_core() -> StackCore:
    core = StackCore(["198.18.0.2/24", "2001:2::2/64"], rng=random.Random(1), config=StackConfig())
    core.intercept.add(["198.19.0.0/16"])
    assert core.get_timer() is None  # answered, and kept
    return core


def receive_first_fragment(core: StackCore, *, identification: int) -> None:
    """The first fragment of a UDP datagram from PEER: it starts a reassembly."""
    header = ipv4.IPv4Header(PEER, US, ipv4.PROTO_UDP, identification=identification,
                             dont_fragment=False, more_fragments=True)  # fmt: skip
    core.receive_packet(ipv4.build_ipv4(header, bytes(64)), NOW)


def test_an_unchanged_generation_asks_no_layer() -> None:
    core = idle_core()
    asked = []

    def counting_get_timer() -> None:
        asked.append(1)

    core._timers = [(counting_get_timer, core.tcp.handle_timer)]
    core.timer_generation.count += 1
    core.get_timer()
    assert len(asked) == 1
    for _ in range(5):
        core.get_timer()
    assert len(asked) == 1  # counted work: the answer is reused


def test_a_tcp_connection_brings_its_retransmission_deadline() -> None:
    core = idle_core()
    connection = core.tcp.connect(US, PEER, 80, NOW)
    core.packets_to_send(NOW)  # the SYN leaves; the layer reschedules the connection
    deadline = core.get_timer()
    assert deadline is not None and NOW < deadline <= NOW + connection._rtt.rto


def test_a_first_fragment_brings_its_reassembly_deadline() -> None:
    core = idle_core()
    receive_first_fragment(core, identification=7)
    assert core.get_timer() == NOW + IPV4_TIMEOUT


def test_a_held_syn_brings_its_pending_deadline() -> None:
    core = idle_core()
    segment = make_segment(PEER, INTERCEPTED, 40000, 80, seq=1, flags=SYN,
                           options=build_options(mss=1460))  # fmt: skip
    core.receive_packet(ipv4.build_ipv4(ipv4.IPv4Header(PEER, INTERCEPTED, 6), segment), NOW)
    assert core.get_timer() == NOW + core.config.intercept.pending_timeout


def test_a_new_udp_flow_brings_its_idle_deadline() -> None:
    core = idle_core()
    body = udp.build_udp(5000, 53, b"q", PEER, INTERCEPTED)
    core.receive_packet(ipv4.build_ipv4(ipv4.IPv4Header(PEER, INTERCEPTED, 17), body), NOW)
    assert core.get_timer() == NOW + core.config.intercept.udp_idle_timeout


def test_a_fired_timer_drops_the_answer() -> None:
    """What fired may leave nothing pending: the past deadline is not answered again."""
    core = idle_core()
    receive_first_fragment(core, identification=8)
    deadline = core.get_timer()
    assert deadline is not None
    core.handle_timer(deadline)
    assert core.get_timer() is None


def test_a_first_ipv6_fragment_brings_its_reassembly_deadline() -> None:
    core = idle_core()
    sender = StackCore(["2001:2::1/64"], rng=random.Random(2))
    sender.send_echo_request(US6, 1, 2, bytes(3000))
    first = sender.packets_to_send(NOW)[0]
    core.receive_packet(first, NOW)
    assert core.get_timer() == NOW + IPV6_TIMEOUT


def test_an_earlier_deadline_beats_a_kept_one() -> None:
    """Not only None is replaced: a reassembly's 30 s, then a SYN's retransmission."""
    core = idle_core()
    receive_first_fragment(core, identification=9)
    assert core.get_timer() == NOW + IPV4_TIMEOUT
    connection = core.tcp.connect(US, PEER, 80, NOW)
    core.packets_to_send(NOW)
    deadline = core.get_timer()
    assert deadline is not None and deadline <= NOW + connection._rtt.rto < NOW + IPV4_TIMEOUT


def test_a_source_registered_later_is_asked() -> None:
    core = idle_core()
    core.register_transport(253, lambda *args: None, get_timer=lambda: NOW + 5,
                            handle_timer=lambda now: None)  # fmt: skip
    assert core.get_timer() == NOW + 5
