"""The build's one step that pyproject.toml cannot say: the TCP connection compiled by mypyc.

The modules in ``COMPILED`` (the per-packet paths of a connection: its control block
and the parts built on it, its RTT estimator, buffers and sent records) are compiled to
C by mypyc (``pip install`` pulls mypy in for the build), each into an extension module
of the same name that Python imports before the ``.py`` beside it. The ``.py`` stays the
source, and is what runs where the build could not compile: without a C compiler, or
with ``AIONETSTACK_PURE_PYTHON=1`` set at install. Both run the same code; the test
suite runs both ways in CI (``tests/conftest.py``: ``AIONETSTACK_INTERPRETED=1`` loads
the sources over the compiled modules). An edited ``.py`` needs ``pip install -e .``
again: the tests refuse to run over a compiled module older than its source.

The C modules written by hand are pyproject.toml's ``ext-modules``.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup

#: Read without importing the package (its dependencies are not installed yet).
COMPILED_MODULES = runpy.run_path(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "aionetstack", "compiled.py")
)["COMPILED_MODULES"]


def compiled_extensions() -> list[object]:
    """mypyc's extensions for ``COMPILED_MODULES``, or none (pure Python) when it is not
    wanted or not installed."""
    if os.environ.get("AIONETSTACK_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    paths = [module.replace(".", "/") + ".py" for module in COMPILED_MODULES]
    # mypyc type-checks what the compiled modules import, the package's __init__ (and so
    # every module) included, in a build environment without the package's dependencies:
    # their types do not matter to the compiled code, so they need not be found there.
    # pyproject.toml's strict settings are for `mypy`, which CI runs on its own.
    options = ["--config-file", os.devnull, "--ignore-missing-imports"]
    extensions = mypycify([*options, *paths], opt_level="3", group_name="aionetstack_native")
    for extension in extensions:
        extension.optional = True  # no C compiler: the install goes on with the sources
    return list(extensions)


setup(ext_modules=compiled_extensions())
