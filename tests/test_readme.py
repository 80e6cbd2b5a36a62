"""The README's Python examples run as written (those that need no TUN)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
IN_PROCESS = [block for block in BLOCKS if "MemoryLink" in block]


def test_the_readme_has_in_process_examples() -> None:
    assert len(IN_PROCESS) >= 2


@pytest.mark.parametrize("code", IN_PROCESS, ids=lambda code: code.splitlines()[-1][:40])
def test_readme_example_runs(code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # the examples may write a pcap file
    script = tmp_path / "example.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip()
