"""Generated documentation stays true to what it is generated from."""

from __future__ import annotations

import runpy
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_tcp_throughput_page_matches_the_snapshot() -> None:
    render = runpy.run_path(str(DOCS / "render_throughput.py"))["render"]
    page = (DOCS / "tcp-throughput.md").read_text()
    assert page == render(), "run: python docs/render_throughput.py"
