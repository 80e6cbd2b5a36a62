"""Helpers shared by the benchmarks: statistics and result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    """Median, p99, min and max."""
    return {
        "median": statistics.median(values),
        "p99": percentile(values, 0.99),
        "min": min(values),
        "max": max(values),
        "count": len(values),
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    # Here: the caller has put the checkout on sys.path.
    from aionetstack.core import gro
    from aionetstack.wire import checksum

    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        # The checksum's word sum in C (wire/_csum.c built) or its Python fallback.
        "checksum": "C" if checksum.ACCELERATED else "Python",
        # Software GRO's batch pass in C (core/_gro.c built) or in Python.
        "gro": "C" if gro.ACCELERATED else "Python",
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path
