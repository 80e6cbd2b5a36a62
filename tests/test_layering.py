"""The layering rule of DESIGN.md §1, checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aionetstack"

#: Top-level modules each layer must never import (stdlib or third party).
FORBIDDEN_EXTERNAL = {
    "wire": {"asyncio", "anyio", "trio", "socket", "selectors", "os", "time", "random",
             "pytun", "dpkt", "fcntl", "threading"},
    "core": {"asyncio", "anyio", "trio", "socket", "selectors", "os", "time", "random",
             "pytun", "dpkt", "fcntl", "threading", "subprocess"},
    "names": {"asyncio", "anyio", "trio", "socket", "selectors", "os", "time", "random",
              "pytun", "dpkt", "fcntl", "threading", "subprocess"},
    "link": {"asyncio", "anyio", "trio", "selectors"},
    # The two drivers: aio is asyncio's, anyio is loop-agnostic (asyncio or trio under it).
    "aio": {"anyio", "trio", "sniffio"},
    "anyio": {"asyncio"},
    # getaddrinfo's shape over any async resolve function, shared by both drivers.
    "addrinfo.py": {"asyncio", "anyio", "trio", "selectors", "os", "time", "random"},
    # Putting a stack together from a link, shared by both drivers' stacks.
    "assembly.py": {"asyncio", "anyio", "trio", "selectors"},
}  # fmt: skip
#: dnspython modules ``names`` may use: the message format only, never its I/O
#: (dns.query, dns.resolver, dns.asyncquery ... open sockets).
NAMES_DNSPYTHON = {"dns.exception", "dns.flags", "dns.message", "dns.name", "dns.rcode",
                   "dns.rdataclass", "dns.rdatatype", "dns.rrset"}  # fmt: skip
#: Subpackages of aionetstack each layer may import (anything else is a violation).
ALLOWED_INTERNAL = {
    "wire": {"wire"},
    "core": {"wire", "core", "errors", "config"},
    "names": {"wire", "names", "errors", "config"},
    "link": {"wire", "link", "errors", "config"},
    "aio": {"aio", "addrinfo", "assembly", "core", "names", "link", "wire", "errors", "config"},
    "anyio": {"anyio", "addrinfo", "assembly", "core", "names", "link", "wire", "errors",
              "config"},
    "addrinfo.py": {"core", "names", "wire", "errors", "config"},
    "assembly.py": {"core", "link", "config"},
    # python -m aionetstack.proxy: an application of the asyncio face (never of anyio's)
    "proxy": {"proxy", "aio", "link", "errors", "config"},
}


def _imports(path: Path, root: Path = PACKAGE.parent) -> list[tuple[str, int]]:
    """Absolute dotted names imported by ``path`` (relative imports resolved against ``root``)."""
    module_parts = list(path.relative_to(root).with_suffix("").parts)
    if module_parts[-1] == "__init__":
        module_parts.pop()
        package_parts = module_parts
    else:
        package_parts = module_parts[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


def _modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] in ALLOWED_INTERNAL
    )


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_layering(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    for name, line in _imports(path):
        parts = name.split(".")
        where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        if parts[0] == "aionetstack":
            assert len(parts) > 1 and parts[1] in ALLOWED_INTERNAL[layer], where
        else:
            assert parts[0] not in FORBIDDEN_EXTERNAL.get(layer, set()), where
            if layer == "names" and parts[0] == "dns":
                assert name in NAMES_DNSPYTHON, where


def test_nothing_in_the_package_imports_testing() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "testing":
            continue
        for name, line in _imports(path):
            assert not name.startswith("aionetstack.testing"), f"{path}:{line} imports {name}"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself must flag a core module importing asyncio."""
    bad = tmp_path / "aionetstack" / "core" / "probe.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("import asyncio\nfrom ..aio import stack\nfrom . import ip\n")
    names = {name for name, _ in _imports(bad, tmp_path)}
    assert names == {"asyncio", "aionetstack.aio", "aionetstack.core"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(path: Path, root: Path) -> set[str]:
    """Dotted names ``path`` imports: modules, and ``module.name`` for each ``from`` import."""
    names: set[str] = set()
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports, ``TYPE_CHECKING`` imports included.

    A package's ``__init__`` (its face, re-exporting its children) is left out: a child
    importing a sibling through the package is not a circle of design.
    """
    paths = {_module_name(p, root): p for p in root.rglob("*.py")}
    faces = {name for name, p in paths.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        if name in faces:
            continue
        targets: set[str] = set()
        for candidate in _imported_names(path, root):
            while candidate and candidate not in paths:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and candidate not in faces:
                targets.add(candidate)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


#: Circles still to break. This list may only shrink (it is empty: keep it so).
KNOWN_CIRCLES: list[set[str]] = []


def test_import_graph_has_no_cycles() -> None:
    """No two modules import each other, directly or round a loop, TYPE_CHECKING included."""
    cycles = [c for c in _cycles(_import_graph()) if c not in KNOWN_CIRCLES]
    assert not cycles, f"import circles: {[sorted(c) for c in cycles]}"


def test_the_cycle_check_catches_a_type_checking_circle(tmp_path: Path) -> None:
    package = tmp_path / "aionetstack"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import thing\n"
    )
    assert _cycles(_import_graph(package)) == [{"aionetstack.a", "aionetstack.b"}]
