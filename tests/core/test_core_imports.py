"""The IP-level core modules import downwards only (no circle, TYPE_CHECKING included)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "aionetstack" / "core"


def _imports(path: Path) -> list[tuple[str, int]]:
    """Dotted names a core module imports, relative imports resolved, TYPE_CHECKING included."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.append((f"aionetstack.core.{node.module.split('.')[0]}", node.lineno))
    return found


def _core_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in CORE.glob("*.py"):
        name = f"aionetstack.core.{path.stem}"
        graph[name] = {
            imported
            for imported, _ in _imports(path)
            if imported.startswith("aionetstack.core.") and imported.count(".") == 2
        }
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return False


def test_no_core_module_reaches_itself() -> None:
    graph = _core_graph()
    circular = sorted(name for name in graph if _reaches(graph, name, name))
    assert circular == []


def test_events_and_udp_import_no_producer_or_consumer_above_them() -> None:
    graph = _core_graph()
    assert "aionetstack.core.udp" not in graph["aionetstack.core.events"]
    assert "aionetstack.core.stack" not in graph["aionetstack.core.udp"]


def test_the_cycle_check_sees_a_circle(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _reaches(graph, "a", "a") and not _reaches(graph, "c", "c")
