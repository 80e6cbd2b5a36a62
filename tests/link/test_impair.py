"""ImpairedPath: each impairment's effect, measured in virtual time, and determinism."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aionetstack.link.impair import ImpairedPath, Impairment

COUNT = 10_000


def numbered(count: int, size: int = 20) -> list[bytes]:
    """Distinct packets whose first 4 bytes are their number."""
    return [i.to_bytes(4, "big") + bytes(size - 4) for i in range(count)]


def number(packet: bytes) -> int:
    return int.from_bytes(packet[:4], "big")


def burst(impairment: Impairment, packets: list[bytes], salt: int | str = 0) -> ImpairedPath:
    """Submit every packet at t=0 and return the path."""
    path = ImpairedPath(impairment, salt)
    for packet in packets:
        path.submit(packet, 0.0)
    return path


def drain(path: ImpairedPath) -> list[tuple[float, bytes]]:
    """Step from deadline to deadline, returning (release time, packet) in delivery order."""
    out: list[tuple[float, bytes]] = []
    for _ in range(100_000):  # bounded: a path never needs more steps than it holds packets
        when = path.next_release()
        if when is None:
            return out
        out.extend((when, packet) for packet in path.release(when))
    raise AssertionError("path did not drain")


def as_kwargs(name: str, value: object) -> dict[str, Any]:
    return {name: value}


def binomial_bound(n: int, p: float, sigmas: float = 4.0) -> tuple[float, float]:
    mean = n * p
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return mean - spread, mean + spread


def outcome(
    impairment: Impairment, salt: int | str = 0
) -> tuple[list[tuple[float, bytes]], dict[str, int]]:
    path = ImpairedPath(impairment, salt)
    for i, packet in enumerate(numbered(2000)):
        path.submit(packet, i * 0.001)
    return drain(path), path.counters()


EVERYTHING = Impairment(loss=0.1, duplicate=0.1, reorder=0.1, corrupt=0.1, delay=0.05, jitter=0.01)


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["loss", "duplicate", "reorder", "corrupt"])
@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan])
def test_probabilities_outside_0_1_are_rejected_by_name(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        Impairment(**as_kwargs(name, value))


@pytest.mark.parametrize("name", ["delay", "jitter", "rate", "reorder_hold"])
@pytest.mark.parametrize("value", [-1.0, math.inf])
def test_durations_must_be_finite_and_non_negative(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        Impairment(**as_kwargs(name, value))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"loss": True}, "loss"),
        ({"delay": "1"}, "delay"),
        ({"seed": 1.5}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"queue_limit": 10.0}, "queue_limit"),
    ],
)
def test_wrong_types_are_type_errors_naming_the_field(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(TypeError, match=name):
        Impairment(**kwargs)


def test_queue_limit_must_hold_a_packet() -> None:
    with pytest.raises(ValueError, match="queue_limit"):
        Impairment(queue_limit=0)


def test_impairment_is_frozen_and_transparency_is_reported() -> None:
    assert Impairment().is_transparent
    assert Impairment(seed=5, queue_limit=3).is_transparent
    assert not Impairment(jitter=0.001).is_transparent
    with pytest.raises(AttributeError):
        Impairment().loss = 0.5  # type: ignore[misc]


def test_path_rejects_a_non_impairment() -> None:
    with pytest.raises(TypeError, match="Impairment"):
        ImpairedPath({"loss": 0.1})  # type: ignore[arg-type]


# -- determinism ------------------------------------------------------------------------


def test_same_seed_gives_identical_outcome() -> None:
    impairment = replace(EVERYTHING, seed=11)
    assert outcome(impairment) == outcome(impairment)


def test_different_seed_or_salt_gives_a_different_outcome() -> None:
    first, _ = outcome(replace(EVERYTHING, seed=11))
    other_seed, _ = outcome(replace(EVERYTHING, seed=12))
    other_salt, _ = outcome(replace(EVERYTHING, seed=11), salt="b->a")
    assert first != other_seed
    assert first != other_salt


def test_a_transparent_path_delivers_everything_in_order_at_once() -> None:
    packets = numbered(100)
    path = burst(Impairment(), packets)
    assert path.next_release() == 0.0
    assert path.release(0.0) == packets
    assert path.next_release() is None
    assert path.counters() == dict(
        submitted=100, delivered=100, lost=0, duplicated=0, reordered=0, corrupted=0,
        queue_dropped=0,
    )  # fmt: skip


# -- loss, duplication, corruption -----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_rate_is_binomial(seed: int) -> None:
    impairment = Impairment(loss=0.2, seed=seed, queue_limit=COUNT)
    path = burst(impairment, numbered(COUNT))
    delivered = path.release(0.0)
    low, high = binomial_bound(COUNT, 0.2)
    assert low <= path.lost <= high
    assert path.lost + len(delivered) == COUNT
    # The survivors keep their order.
    assert [number(p) for p in delivered] == sorted(number(p) for p in delivered)


def test_loss_extremes() -> None:
    assert burst(Impairment(loss=1.0), numbered(50)).lost == 50
    assert burst(Impairment(loss=0.0), numbered(50)).lost == 0


def test_duplicates_follow_their_original() -> None:
    impairment = Impairment(duplicate=0.1, seed=3, queue_limit=2 * COUNT)
    path = burst(impairment, numbered(COUNT))
    delivered = path.release(0.0)
    low, high = binomial_bound(COUNT, 0.1)
    assert low <= path.duplicated <= high
    assert len(delivered) == COUNT + path.duplicated
    numbers = [number(p) for p in delivered]
    assert sorted(set(numbers)) == list(range(COUNT))
    assert numbers == sorted(numbers)  # each copy sits right after its original
    assert path.reordered == 0


def test_corruption_flips_exactly_one_bit() -> None:
    packets = numbered(COUNT, size=64)
    impairment = Impairment(corrupt=0.05, seed=4, queue_limit=COUNT)
    path = burst(impairment, packets)
    delivered = path.release(0.0)
    assert len(delivered) == COUNT
    damaged = 0
    for original, received in zip(packets, delivered, strict=True):
        flipped = sum((a ^ b).bit_count() for a, b in zip(original, received, strict=True))
        assert flipped in (0, 1)
        damaged += flipped
    assert damaged == path.corrupted
    low, high = binomial_bound(COUNT, 0.05)
    assert low <= damaged <= high


def test_empty_packet_cannot_be_corrupted() -> None:
    path = burst(Impairment(corrupt=1.0), [b""])
    assert path.release(0.0) == [b""]
    assert path.corrupted == 0


# -- reordering -------------------------------------------------------------------------------


def out_of_order_count(numbers: list[int]) -> int:
    """Packets delivered after one that was submitted later."""
    highest, late = -1, 0
    for n in numbers:
        if n < highest:
            late += 1
        highest = max(highest, n)
    return late


def test_reorder_really_reorders() -> None:
    impairment = Impairment(reorder=0.2, seed=5, queue_limit=COUNT)
    path = burst(impairment, numbered(COUNT))
    delivered = drain(path)
    numbers = [number(p) for _, p in delivered]
    assert sorted(numbers) == list(range(COUNT))
    late = out_of_order_count(numbers)
    assert late == path.reordered
    # A held packet is late unless the packets after it were all held too.
    low, _ = binomial_bound(COUNT, 0.2 * 0.8)
    assert low <= late <= COUNT * 0.2 + 4 * math.sqrt(COUNT * 0.16)
    # A late packet comes after the run of packets held with it and its follower,
    # never further back: it is overtaken only by packets submitted just after it.
    for position, n in enumerate(numbers):
        if n < max(numbers[:position], default=-1):
            assert numbers[position - 1] - n <= 10


def first_held_then_not(hold: float) -> ImpairedPath:
    """A path (seed found deterministically) that holds packet 0 and not packet 1."""
    for seed in range(200):
        probe = ImpairedPath(Impairment(reorder=0.5, seed=seed, reorder_hold=hold))
        probe.submit(b"\x00", 0.0)
        if probe.release(0.0):
            continue  # packet 0 was not held
        probe.submit(b"\x01", 0.0)
        if probe.release(0.0) == [b"\x01", b"\x00"]:
            return ImpairedPath(Impairment(reorder=0.5, seed=seed, reorder_hold=hold))
    raise AssertionError("no seed in range holds packet 0 only")


def test_held_packet_goes_right_after_its_follower() -> None:
    path = first_held_then_not(hold=0.01)
    path.submit(b"\x00", 0.0)
    assert path.next_release() == pytest.approx(0.01)
    path.submit(b"\x01", 0.005)
    assert path.next_release() == 0.005
    assert path.release(0.005) == [b"\x01", b"\x00"]
    assert path.reordered == 1


def test_held_packet_without_follower_goes_at_its_hold_deadline_in_order() -> None:
    path = first_held_then_not(hold=0.01)
    path.submit(b"\x00", 0.0)
    assert path.release(0.0099) == []
    assert path.release(0.01) == [b"\x00"]
    path.submit(b"\x01", 0.02)  # too late to overtake
    assert path.release(0.02) == [b"\x01"]
    assert path.reordered == 0


def test_a_late_follower_does_not_overtake_even_without_a_release_call() -> None:
    path = first_held_then_not(hold=0.01)
    path.submit(b"\x00", 0.0)
    path.submit(b"\x01", 0.5)
    assert path.release(0.5) == [b"\x00", b"\x01"]
    assert path.reordered == 0


# -- timing ------------------------------------------------------------------------------------


def test_delay_is_exact() -> None:
    path = ImpairedPath(Impairment(delay=0.25))
    path.submit(b"a", 1.0)
    path.submit(b"b", 1.5)
    assert path.next_release() == 1.25
    assert path.release(1.2499) == []
    assert path.release(1.25) == [b"a"]
    assert path.next_release() == 1.75
    assert path.release(10.0) == [b"b"]
    assert path.next_release() is None


def test_jitter_spreads_delay_uniformly_and_reorders() -> None:
    path = burst(Impairment(delay=0.1, jitter=0.02, seed=6), numbered(1000))
    times = [when for when, _ in drain(path)]
    assert len(times) == 1000
    assert all(0.08 <= t <= 0.12 for t in times)
    assert min(times) < 0.081 and max(times) > 0.119
    assert abs(sum(times) / len(times) - 0.1) < 0.002  # uniform about the delay
    assert times == sorted(times)
    assert path.reordered > 0


def test_jitter_never_delivers_before_submission() -> None:
    path = ImpairedPath(Impairment(jitter=0.01, seed=7))
    for i in range(200):
        path.submit(i.to_bytes(4, "big"), 2.0)
    times = [when for when, _ in drain(path)]
    assert min(times) == 2.0
    assert max(times) <= 2.01


def test_rate_serialises_back_to_back() -> None:
    # 8000 bit/s = 1000 bytes/s: a 100-byte packet takes 0.1 s.
    path = ImpairedPath(Impairment(rate=8000, delay=0.05))
    for packet in numbered(5, size=100):
        path.submit(packet, 0.0)
    times = [when for when, _ in drain(path)]
    assert times == pytest.approx([0.15, 0.25, 0.35, 0.45, 0.55])
    path.submit(bytes(100), 10.0)  # the queue drained long ago: no wait
    assert path.next_release() == pytest.approx(10.15)


def test_queue_limit_tail_drops() -> None:
    path = ImpairedPath(Impairment(delay=1.0, queue_limit=10))
    packets = numbered(15)
    for packet in packets:
        path.submit(packet, 0.0)
    assert path.queue_dropped == 5
    assert len(path) == 10
    assert path.release(1.0) == packets[:10]
    path.submit(packets[10], 1.0)  # room again
    assert path.queue_dropped == 5
    assert path.release(2.0) == [packets[10]]


def test_queue_limit_with_a_slow_bottleneck() -> None:
    path = ImpairedPath(Impairment(rate=8000, queue_limit=3))
    for packet in numbered(5, size=100):
        path.submit(packet, 0.0)
    assert path.queue_dropped == 2
    assert path.release(0.15) == [numbered(1, size=100)[0]]
    path.submit(bytes(100), 0.15)  # one left the queue: one fits
    assert path.queue_dropped == 2
    path.submit(bytes(100), 0.15)
    assert path.queue_dropped == 3


def test_release_honours_limit() -> None:
    path = burst(Impairment(), numbered(10))
    assert len(path.release(0.0, limit=4)) == 4
    assert len(path.release(0.0)) == 6


# -- invariants under arbitrary use ------------------------------------------------------------

probability = st.sampled_from([0.0, 0.05, 0.3, 1.0])


impairments = st.builds(
    Impairment,
    loss=probability,
    duplicate=probability,
    reorder=probability,
    corrupt=probability,
    delay=st.sampled_from([0.0, 0.01, 0.2]),
    jitter=st.sampled_from([0.0, 0.005, 0.3]),
    rate=st.sampled_from([0.0, 1e5, 1e7]),
    queue_limit=st.integers(1, 50),
    seed=st.integers(0, 2**32),
)
#: (submit?, time advance, packet) steps.
steps_strategy = st.lists(
    st.tuples(st.booleans(), st.floats(0.0, 0.05), st.binary(max_size=64)), max_size=80
)


@settings(max_examples=60, deadline=None)
@given(impairment=impairments, steps=steps_strategy)
def test_packets_are_conserved_and_timers_are_honest(
    impairment: Impairment, steps: list[tuple[bool, float, bytes]]
) -> None:
    queue_limit = impairment.queue_limit
    path = ImpairedPath(impairment)
    now = 0.0
    for is_submit, advance, packet in steps:
        now += advance
        if is_submit:
            path.submit(packet, now)
        else:
            due = path.next_release()
            released = path.release(now)
            assert bool(released) == (due is not None and due <= now)
        assert len(path) <= queue_limit
        assert (path.next_release() is None) == (len(path) == 0)
        c = path.counters()
        assert c["submitted"] + c["duplicated"] == (
            c["delivered"] + c["lost"] + c["queue_dropped"] + len(path)
        )
    drain(path)
    assert len(path) == 0
