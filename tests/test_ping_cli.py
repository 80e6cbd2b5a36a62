"""``python -m aionetstack.ping``: output, exit status and arguments, as iputils' ping."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aionetstack.ping import main

REPLY = re.compile(r"^64 bytes from 198\.18\.0\.1: icmp_seq=(\d+) ttl=64 time=\d+\.\d{3} ms$")
SUMMARY = re.compile(r"^(\d+) packets transmitted, (\d+) received, (\d+)% packet loss, time \d+ms$")
RTT = re.compile(r"^rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms$")
ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def test_in_process_ping_looks_like_ping(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-c", "3", "-i", "0.01")
    assert status == 0
    assert lines[0] == "PING 198.18.0.1 (198.18.0.1) 56(84) bytes of data."
    assert [int(REPLY.match(line).group(1)) for line in lines[1:4]] == [1, 2, 3]  # type: ignore[union-attr]
    assert lines[4] == ""
    assert lines[5] == "--- 198.18.0.1 ping statistics ---"
    assert SUMMARY.match(lines[6]).groups() == ("3", "3", "0")  # type: ignore[union-attr]
    assert RTT.match(lines[7])


def test_size_option_changes_the_reply_size(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-c", "1", "-s", "100", "198.18.0.9")
    assert status == 0
    assert lines[0] == "PING 198.18.0.9 (198.18.0.9) 100(128) bytes of data."
    assert lines[1].startswith("108 bytes from 198.18.0.9: icmp_seq=1 ttl=64 time=")


def test_reported_loss_is_seeded_and_exact(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("-c", "50", "-i", "0", "-W", "0.05", "--loss", "0.2", "--seed", "7")
    first = run(capsys, *argv)
    second = run(capsys, *argv)
    [summary] = [SUMMARY.match(line) for line in first[1] if SUMMARY.match(line)]
    [again] = [SUMMARY.match(line) for line in second[1] if SUMMARY.match(line)]
    assert summary.groups() == again.groups()  # type: ignore[union-attr]
    transmitted, received, loss = map(int, summary.groups())  # type: ignore[union-attr]
    replies = [line for line in first[1] if REPLY.match(line)]
    assert transmitted == 50 and received == len(replies)
    assert loss == round(100 * (1 - received / 50)) and 20 <= loss <= 52
    assert first[0] == 0


def test_exit_status_1_when_nothing_came_back(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(
        capsys, "-c", "2", "-i", "0", "-W", "0.05", "--loss", "0.99", "--seed", "3"
    )
    assert status == 1
    assert SUMMARY.match(lines[-1]).groups() == ("2", "0", "100")  # type: ignore[union-attr]


def test_in_process_ipv6_ping_with_fragments(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-6", "-c", "2", "-i", "0.01", "-s", "8000")
    assert status == 0
    assert lines[0] == "PING 2001:2::1 (2001:2::1) 8000 data bytes"
    assert lines[1].startswith("8008 bytes from 2001:2::1: icmp_seq=1 ttl=64 time=")


def test_family_follows_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, _ = run(capsys, "-c", "1", "2001:2::7")
    assert status == 0 and lines[1].startswith("64 bytes from 2001:2::7:")


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "-1"],
        ["-W", "0"],
        ["-s", "65508"],
        ["-6", "198.18.0.1"],
        ["-4", "-6"],
        ["example.com"],
        ["10.0.0.1"],
        ["--loss", "1.5"],
        ["-x"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to drop a capability",
)
def test_tun_without_privileges_names_the_capability() -> None:
    from aionetstack.testing.netns import network_namespace

    with network_namespace("aions-cli"):
        result = subprocess.run(
            ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", sys.executable,
             "-m", "aionetstack.ping", "--tun", "aionsnp0", "-c", "1"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "CAP_NET_ADMIN" in lines[0] and "ip tuntap add mode tun user" in lines[0]
