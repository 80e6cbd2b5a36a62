"""``python -m aionetstack.proxy``'s argument checks (no TUN needed) and the SOCKS5 UDP codec."""

from __future__ import annotations

import pytest

from aionetstack.proxy.cli import main
from aionetstack.proxy.socks5_udp import decapsulate, encapsulate


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tun", "t0", "--networks", "198.19.0.0/16"], "one of the arguments"),
        (["--tun", "t0", "--networks", "198.19.0.1/16", "--direct"], "--networks"),
        (["--tun", "t0", "--networks", "198.19.0.0/16", "--socks5", "nohost"], "HOST:PORT"),
        (["--tun", "t0", "--networks", "198.19.0.0/16", "--socks5", "127.0.0.1:1080",
          "--mark", "1"], "go with --direct"),
        (["--tun", "t0", "--networks", "198.19.0.0/16", "--direct", "--connect-timeout", "9"],
         "--connect-timeout"),
        (["--tun", "t0", "--networks", "198.19.0.0/16", "--direct", "--redirect", "x"],
         "--redirect"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_saying_why(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_socks5_udp_header_round_trip() -> None:
    packet = encapsulate(("198.19.1.2", 53), b"query")
    assert packet[:4] == b"\x00\x00\x00\x01" and packet[4:8] == bytes([198, 19, 1, 2])
    assert decapsulate(packet) == b"query"
    six = encapsulate(("2001:2::1", 53), b"q6")
    assert six[3] == 4 and decapsulate(six) == b"q6"
    assert decapsulate(b"\x00\x00\x01\x01" + bytes(6) + b"fragment") is None  # FRAG != 0
    assert decapsulate(b"\x00\x00\x00\x09") is None  # unknown address type
    assert decapsulate(b"\x00\x00") is None
