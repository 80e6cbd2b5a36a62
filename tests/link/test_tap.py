"""TapLink's arguments (the device itself is exercised in tests/tun/test_tap.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("pytun")

from aionetstack.link.tap import _choose_mac


@pytest.mark.parametrize("bad", ["01:00:5e:00:00:01", "00:00:00:00:00:00", "zz:00:00:00:00:01"])
def test_bad_macs(bad: str) -> None:
    with pytest.raises(ValueError):
        _choose_mac(bad)


def test_made_up_mac_is_local_unicast() -> None:
    mac = _choose_mac(None)
    assert len(mac) == 6 and mac[0] & 0x02 and not mac[0] & 0x01
    assert _choose_mac("02:00:00:00:00:02") == bytes.fromhex("020000000002")
    with pytest.raises(TypeError):
        _choose_mac(1234)  # type: ignore[arg-type]
