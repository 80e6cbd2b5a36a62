"""Slow tests (the 10 MB simulator matrix) run only when asked for.

Select them with ``-m slow`` (or any -m expression naming "slow"), or set
``AIONETSTACK_SLOW=1``; otherwise they are skipped so the default run stays short.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = "slow" in (config.getoption("-m") or "") or os.environ.get("AIONETSTACK_SLOW") == "1"
    if wanted:
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or AIONETSTACK_SLOW=1")
    for item in items:
        if "slow" in item.keywords and item.path.is_relative_to(os.path.dirname(__file__)):
            item.add_marker(skip)
