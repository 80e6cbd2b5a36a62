"""The receive pool lends a buffer with each large packet and reads into it again only
once no view of it is left (link/receive_pool.py)."""

from __future__ import annotations

from aionetstack.link.receive_pool import _SWEEP_EVERY, LENT_BUFFERS_MAX, SPARE_BUFFERS, ReceivePool
from aionetstack.wire.packet_memory import PacketMemory


def test_a_lent_buffer_is_not_read_into_while_a_view_of_it_lives() -> None:
    pool = ReceivePool(64)
    first = pool.current
    first[:5] = b"hello"
    view = memoryview(first)[:5]
    pool.lend()
    for _ in range(10):  # more reads: none of them may land in the viewed buffer
        assert pool.current is not first
        pool.current[:5] = b"xxxxx"
        held = memoryview(pool.current)[:5]
        pool.lend()
        del held
    assert view == b"hello"


def test_a_buffer_is_reused_once_its_views_are_gone() -> None:
    pool = ReceivePool(64)
    first = id(pool.current)  # ids only: a reference held here would count as a user
    view = memoryview(pool.current)[2:9]
    part = view[1:3]  # a view of the view holds the buffer too
    pool.lend()
    second = id(pool.current)
    del view
    pool.lend()  # ``part`` still holds the first buffer, nothing holds the second
    assert id(pool.current) not in (first, second)
    del part
    pool.lend()
    assert id(pool.current) in (first, second)  # no new memory made


def test_buffers_are_packet_memory_and_their_number_is_bounded() -> None:
    pool = ReceivePool(16)
    views = []
    for _ in range(LENT_BUFFERS_MAX):
        assert type(pool.current) is PacketMemory
        views.append(memoryview(pool.current))
        assert pool.lend()
    held = pool.current
    views.append(memoryview(held))
    assert not pool.lend()  # every buffer is held: the caller copies instead
    assert pool.current is held and pool.lent == LENT_BUFFERS_MAX
    views.pop(0)  # the oldest buffer's last view goes: it is read into again, found by
    # the scan (a few buffers per call, rotating) within as many calls as there are buffers
    assert any(pool.lend() for _ in range(LENT_BUFFERS_MAX))


def test_more_buffers_than_spares_are_lent_while_held_and_given_back_after() -> None:
    pool = ReceivePool(16)
    held = 4 * SPARE_BUFFERS  # many connections' unread data at once
    views = []
    for _ in range(held):
        views.append(memoryview(pool.current))
        assert pool.lend()  # lent, not copied: the bound is LENT_BUFFERS_MAX
    assert pool.lent == held
    views.clear()  # the data is read: every buffer returns
    made = pool.made
    for _ in range(2 * _SWEEP_EVERY - held):  # two sweeps
        assert pool.lend()
        assert pool.lent <= held  # returned buffers reused: no new one made
    assert pool.made == made
    # The burst is over: back to the spares (and the buffer just lent).
    assert pool.lent == SPARE_BUFFERS + 1


def test_sweeps_never_reuse_a_held_buffer() -> None:
    pool = ReceivePool(16)
    views = []
    for index in range(3 * SPARE_BUFFERS):
        pool.current[0] = index % 3  # 0: a packet still unread at the sweeps
        views.append(memoryview(pool.current))
        assert pool.lend()
    unread = [view for view in views if view[0] == 0]
    del views  # two buffers in three return
    for _ in range(3 * _SWEEP_EVERY):
        pool.current[0] = 9  # what a read into a reused buffer would do
        assert pool.lend()
    assert all(view[0] == 0 for view in unread)  # no held buffer was read into again


def test_returned_buffers_behind_held_ones_are_reused_not_made_anew() -> None:
    """The scan reads a few of the oldest buffers; with many connections' data held
    there it misses returned ones behind them. Those takes are served by the free
    list each sweep fills, so a steady state makes no new buffers."""
    pool = ReceivePool(16)
    held = []
    for _ in range(200):  # a long run of unread data at the head
        held.append(memoryview(pool.current))
        assert pool.lend()
    for _ in range(_SWEEP_EVERY):  # then packets read at once: each returns
        assert pool.lend()
    made = pool.made  # the first sweep has run: returned buffers are in its free list
    for _ in range(4 * _SWEEP_EVERY):
        assert pool.lend()
    # Reused: 34 new buffers in 4,096 takes, where without the free list 963 were.
    assert pool.made - made <= _SWEEP_EVERY // 16
    assert all(view.obj is not pool.current for view in held)
