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
    "aio": {"aio", "core", "names", "link", "wire", "errors", "config"},
    "anyio": {"anyio", "core", "names", "link", "wire", "errors", "config"},
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
