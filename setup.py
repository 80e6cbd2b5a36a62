"""The build's one step that pyproject.toml cannot say: the TCP connection compiled by mypyc.

The modules in ``COMPILED_MODULES`` (``aionetstack/compiled.py``: the per-packet paths
of a connection, its control block and the parts built on it, its RTT estimator,
buffers and sent records) are compiled to C by mypyc (``pip install`` pulls mypy in for
the build), each into an extension module of the same name that Python imports before
the ``.py`` beside it, all of them loading one shared library. The ``.py`` stays the
source, and is what runs where the build could not compile: without a C compiler, or
with ``AIONETSTACK_PURE_PYTHON=1`` set at install (an editable install's earlier builds
stay in the checkout until deleted: ``git clean -fX aionetstack``). Both run the same
code; the test suite runs both ways in CI (``tests/conftest.py``:
``AIONETSTACK_INTERPRETED=1`` loads the sources over the compiled modules). An edited
``.py`` of ``core/`` or ``wire/`` needs ``pip install -e .`` again: the tests refuse to
run over compiled modules older than the sources they hold.

The C modules written by hand are pyproject.toml's ``ext-modules``.
"""

from __future__ import annotations

import os
import runpy

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

#: Read without importing the package (its dependencies are not installed yet).
COMPILED_MODULES = runpy.run_path(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "aionetstack", "compiled.py")
)["COMPILED_MODULES"]
#: mypyc's shared library, which every compiled module's extension loads.
GROUP_LIBRARY = "aionetstack_native__mypyc"


def compiled_extensions() -> list[object]:
    """mypyc's extensions for ``COMPILED_MODULES``, or none (pure Python) when it is not
    wanted (``AIONETSTACK_PURE_PYTHON=1``) or not installed."""
    if os.environ.get("AIONETSTACK_PURE_PYTHON") == "1":
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


class BuildGroupFirst(build_ext):
    """Builds mypyc's shared library before the modules that load it, and drops those
    modules when it could not be built: each would then fail to import, where its
    ``.py`` runs (the hand-written C modules build either way)."""

    def build_extensions(self) -> None:
        group = next((e for e in self.extensions if e.name == GROUP_LIBRARY), None)
        if group is not None:
            try:
                self.build_extension(group)
            except (CCompilerError, ExecError, PlatformError, OSError) as error:
                self.warn(f"{GROUP_LIBRARY} not built ({error}): the sources run instead")
                dropped = {GROUP_LIBRARY, *COMPILED_MODULES}
                self.extensions = [e for e in self.extensions if e.name not in dropped]
        super().build_extensions()  # the library, built above, is skipped as up to date


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": BuildGroupFirst})
