"""device/ is self-contained (never imports cloud/) and its modules import without a cycle."""

from __future__ import annotations

from tests.support.imports import (
    PROJECT_ROOT,
    find_cycle,
    import_graph,
    imported_modules,
    module_name,
)

DEVICE_DIR = PROJECT_ROOT / "device"


def test_device_never_imports_cloud() -> None:
    offenders = {
        module_name(path): sorted(m for m in imported_modules(path) if m.split(".")[0] == "cloud")
        for path in DEVICE_DIR.rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_device_modules_have_no_import_cycle() -> None:
    graph = import_graph("device")
    assert "device.agent" in graph["device.main_v2"]  # the walk does see device imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_watch_loop_does_not_know_the_agent() -> None:
    assert "device.agent" not in import_graph("device")["device.watch"]


def test_cycle_finder_reports_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
