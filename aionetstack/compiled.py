"""Which modules the build compiles with mypyc (``setup.py``), and whether they run so.

Importing this module imports nothing else of the package: ``setup.py`` reads it
before anything is installed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Final

#: A TCP connection's per-packet code: its control block and the parts built on it
#: (one line of subclasses, ``core/tcp/tcb.py``), its RTT estimator, buffers and
#: sent records. Each compiles to an extension module of the same name.
COMPILED_MODULES: Final = (
    "aionetstack.core.tcp.tcb",
    "aionetstack.core.tcp.opening",
    "aionetstack.core.tcp.timers",
    "aionetstack.core.tcp.egress",
    "aionetstack.core.tcp.send",
    "aionetstack.core.tcp.receive",
    "aionetstack.core.tcp.recovery",
    "aionetstack.core.tcp.ack",
    "aionetstack.core.tcp.ingress",
    "aionetstack.core.tcp.connection",
    "aionetstack.core.tcp.rtt",
    "aionetstack.core.tcp.send_buffer",
    "aionetstack.core.tcp.receive_buffer",
    "aionetstack.core.tcp.sent_record",
)


def compiled_modules() -> list[str]:
    """Those of :data:`COMPILED_MODULES` that this interpreter loads as compiled code."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    found = []
    for name in COMPILED_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None and spec.origin.endswith(suffixes):
            found.append(name)
    return found


def stale_compiled_modules() -> list[str]:
    """Compiled modules older than their source (edited since ``pip install -e .``)."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    stale = []
    for name in COMPILED_MODULES:
        spec = importlib.util.find_spec(name)
        origin = None if spec is None else spec.origin
        if origin is None or not origin.endswith(suffixes):
            continue
        source = Path(origin).with_name(name.rsplit(".", 1)[1] + ".py")
        if source.exists() and source.stat().st_mtime > Path(origin).stat().st_mtime:
            stale.append(name)
    return stale


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` of each compiled module ahead of its extension module."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        for entry in path or ():
            source = os.path.join(entry, fullname.rsplit(".", 1)[1] + ".py")
            if os.path.exists(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def load_sources_first() -> None:
    """From now on, import :data:`COMPILED_MODULES` from their ``.py`` sources (the tests'
    ``AIONETSTACK_INTERPRETED=1``); call before anything imports them."""
    if not any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst())
