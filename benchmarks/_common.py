"""Helpers shared by the benchmarks: statistics, result files, and one benchmark
server (``server.py``) with its client (``client.py``)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

#: Where ``server.py`` listens for the client, by backend (the stack's TUN address; asyncio
#: on loopback), asyncio's first.
HOSTS = {"kernel": "127.0.0.1", "stack": "198.18.0.2"}


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


class BenchServer:
    """A running ``server.py``: its process and :meth:`ask` for its one-line answers."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = process.stdout

    def ask(self, command: str) -> Any:
        """``cpu``, ``stats`` or ``rss``: the server's answer, decoded from JSON."""
        self._stdin.write(command + "\n")
        self._stdin.flush()
        return json.loads(self._stdout.readline())


@contextlib.contextmanager
def bench_server(backend: str, host: str, *args: str,
                 env: dict[str, str] | None = None) -> Iterator[BenchServer]:  # fmt: skip
    """``server.py BACKEND HOST --cpu 1 ARGS`` (``env`` added to ours), once it says
    ``ready``; on leaving, its stdin is closed, which stops it, and it is waited for."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), backend, host, "--cpu", "1", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    server = BenchServer(process)
    try:
        line = server._stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the server did not start: {line!r}")
        yield server
    finally:
        server._stdin.close()
        process.wait(timeout=60)


def run_client(mode: str, host: str, seconds: float, connections: int,
               env: dict[str, str]) -> dict[str, float]:  # fmt: skip
    """``client.py`` (``env`` added to ours: ``BENCH_CPU``, ``BENCH_CC``): its answer."""
    client = subprocess.run(
        [sys.executable, str(HERE / "client.py"), mode, host, str(seconds), str(connections)],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
        env={**os.environ, **env},
    )  # fmt: skip
    answer: dict[str, float] = json.loads(client.stdout.strip().splitlines()[-1])
    return answer
