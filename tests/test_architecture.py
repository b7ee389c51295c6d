"""The cloud's dependencies point one way: routes -> subsystem services -> models / core."""

from __future__ import annotations

from tests.support.imports import PROJECT_ROOT, find_cycle, import_graph, imported_modules

# Only the app factory and the CLI wire the HTTP layer to the rest.
WIRING = {"cloud.app", "cloud.__main__"}


def test_cloud_modules_have_no_import_cycle() -> None:
    graph = import_graph("cloud")
    assert "cloud.hub.hub" in graph["cloud.app"]  # the walk does see cloud imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_subsystem_imports_the_http_layer() -> None:
    offenders = {
        module: sorted(target for target in targets if target.startswith("cloud.api"))
        for module, targets in import_graph("cloud").items()
        if not module.startswith("cloud.api") and module not in WIRING
    }
    assert {module: found for module, found in offenders.items() if found} == {}


def test_core_imports_no_subsystem() -> None:
    offenders = {
        module: sorted(
            t for t in targets if not t.startswith(("cloud.core", "cloud.models")) and t != "cloud"
        )
        for module, targets in import_graph("cloud").items()
        if module.startswith("cloud.core")
    }
    assert {module: found for module, found in offenders.items() if found} == {}


def test_cloud_never_imports_torch_or_the_device_agent() -> None:
    offenders = {
        str(path.relative_to(PROJECT_ROOT)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in {"torch", "tensorrt", "device"}
        )
        for path in (PROJECT_ROOT / "cloud").rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}
