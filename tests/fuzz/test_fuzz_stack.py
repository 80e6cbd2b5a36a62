"""The stateful fuzz target: packets, ICMP errors, application calls and time, fed to a
StackCore in virtual time, with invariants and a work bound checked after every step.

CI runs a bounded number of examples (deterministic, see tests/conftest.py). Longer
runs: ``HYPOTHESIS_PROFILE=explore FUZZ_EXAMPLES=20000 pytest tests/fuzz`` or the
atheris harness ``tests/fuzz/atheris_stack.py`` (docs/security.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aionetstack.core.tcp import TcpState
from aionetstack.testing.fuzz import (
    StackFuzzer,
    advance_record,
    app_record,
    handshake_record,
    icmp_record,
    raw_record,
    segment_record,
)
from aionetstack.wire import tcp

CORPUS = Path(__file__).parent / "corpus" / "stack"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))

#: Deltas around the live sequence numbers: in window, at its edges, and far outside it.
DELTAS = st.one_of(
    st.sampled_from([0, 1, -1, 2, 1460, -1460, 65535, 2**31, 2**32 - 1]),
    st.integers(-3000, 70_000),
)
FLAGS = st.one_of(
    st.sampled_from([tcp.ACK, tcp.ACK | tcp.PSH, tcp.ACK | tcp.FIN, tcp.RST, tcp.RST | tcp.ACK,
                     tcp.SYN, tcp.SYN | tcp.ACK, 0]),
    st.integers(0, 0xFF),
)  # fmt: skip
OPTIONS = st.one_of(
    st.just(b""),
    st.builds(
        lambda left, right: tcp.build_options(sack_blocks=[(left, right)]),
        st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
    ),
    st.builds(lambda value: tcp.build_options(timestamp=(value, 0)), st.integers(0, 2**32 - 1)),
    st.binary(max_size=40),
)  # fmt: skip


class StackMachine(RuleBasedStateMachine):
    """Each rule is one record of the fuzzer's script; the invariant runs after each."""

    def __init__(self) -> None:
        super().__init__()
        self.fuzzer = StackFuzzer(count_work=True)

    @rule(
        which=st.integers(0x80, 0xFF), flags=FLAGS, seq=DELTAS, ack=DELTAS,
        window=st.sampled_from([0, 1, 512, 65535]), units=st.integers(0, 12),
        scale=st.integers(0, 15), options=OPTIONS,
    )  # fmt: skip
    def segment_to_a_connection(  # noqa: PLR0917
        self, which: int, flags: int, seq: int, ack: int, window: int, units: int,
        scale: int, options: bytes,
    ) -> None:  # fmt: skip
        self.fuzzer.apply(segment_record(which, flags, seq, ack, window, units, scale, options))

    @rule(which=st.integers(0, 0x7F), flags=FLAGS, seq=st.integers(0, 2**32 - 1))
    def segment_to_the_listener(self, which: int, flags: int, seq: int) -> None:
        self.fuzzer.apply(segment_record(which, flags, seq, 0, 8192, raw_seq=True))

    @rule(choice=st.integers(0, 255), option_set=st.integers(0, 255))
    def handshake(self, choice: int, option_set: int) -> None:
        self.fuzzer.apply(handshake_record(choice, option_set, 65535))

    @rule(packet=st.binary(max_size=120))
    def raw_packet(self, packet: bytes) -> None:
        self.fuzzer.apply(raw_record(packet))

    @rule(kind=st.integers(0, 255), shift=st.integers(-3, 3))
    def icmp_error(self, kind: int, shift: int) -> None:
        self.fuzzer.apply(icmp_record(kind, shift))

    @rule(
        action=st.sampled_from(["send", "receive", "shutdown", "close", "abort", "accept"]),
        which=st.integers(0, 255), amount=st.sampled_from([1, 100, 1460, 20_000, 65_535]),
    )  # fmt: skip
    def application(self, action: str, which: int, amount: int) -> None:
        self.fuzzer.apply(app_record(action, which, amount))

    @rule(milliseconds=st.sampled_from([1, 40, 200, 1000, 5000, 65_535]))
    def time_passes(self, milliseconds: int) -> None:
        self.fuzzer.apply(advance_record(milliseconds))

    @invariant()
    def bookkeeping_holds(self) -> None:
        self.fuzzer.check()

    def teardown(self) -> None:
        self.fuzzer.finish()


class StackMachine6(StackMachine):
    """The same rules with the stack and its peer on IPv6 (2001:2::/64)."""

    def __init__(self) -> None:
        super().__init__()
        self.fuzzer = StackFuzzer(count_work=True, ipv6=True)


TestStackMachine6 = StackMachine6.TestCase
TestStackMachine6.settings = settings(
    max_examples=max(EXAMPLES // 2, 1), stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip
TestStackMachine = StackMachine.TestCase
TestStackMachine.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=1500), st.booleans())
def test_arbitrary_scripts(script: bytes, ipv6: bool) -> None:
    """Unstructured bytes decoded as records (what atheris feeds the same target)."""
    fuzzer = StackFuzzer(count_work=True, ipv6=ipv6)
    fuzzer.run(script)
    fuzzer.finish()


def test_the_corpus_scripts_run_clean() -> None:
    scripts = sorted(CORPUS.glob("*.bin"))
    assert scripts, "run tests/fuzz/corpus_from_pcaps.py"
    for path in scripts:
        fuzzer = StackFuzzer(count_work=True)
        fuzzer.run(path.read_bytes())
        fuzzer.finish()


def test_the_work_bound_catches_a_quadratic_out_of_order_queue() -> None:
    """The SegmentSmack pattern as a script: handshake, then one-byte segments with holes.
    Every record stays within the per-record work bound (the old linear queue broke it
    after a few thousand ranges)."""
    fuzzer = StackFuzzer(count_work=True)
    fuzzer.apply(handshake_record(0, 0x80 | 7 << 4 | 4 | 2, 65535))  # wscale 7, SACK, MSS 1460
    assert fuzzer.connections[-1].state is TcpState.ESTABLISHED
    target = 0x80 | (len(fuzzer.connections) - 1)
    for index in range(1800):
        fuzzer.apply(segment_record(target, tcp.ACK, 2 + 2 * index + 0, 0, 65535, 1, 0))
        fuzzer.records = 0  # the script-length cap is not what this test is about
    ooo = fuzzer.connections[-1]._ooo
    assert ooo is not None and ooo.check() == []
