"""device/ is self-contained (never imports cloud/) and its modules import without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

DEVICE_DIR = Path(__file__).resolve().parents[2] / "device"


def module_name(path: Path) -> str:
    parts = path.relative_to(DEVICE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement names, TYPE_CHECKING and function-local ones too."""
    found: set[str] = set()
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    )
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def device_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in DEVICE_DIR.rglob("*.py")}
    return {
        name: imported_modules(path) & modules.keys() - {name} for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph[node]):
            cycle = visit(target, [*trail, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_device_never_imports_cloud() -> None:
    offenders = {
        module_name(path): sorted(m for m in imported_modules(path) if m.split(".")[0] == "cloud")
        for path in DEVICE_DIR.rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_device_modules_have_no_import_cycle() -> None:
    graph = device_graph()
    assert "device.agent" in graph["device.main_v2"]  # the walk does see device imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_watch_loop_does_not_know_the_agent() -> None:
    assert "device.agent" not in device_graph()["device.watch"]


def test_cycle_finder_reports_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
