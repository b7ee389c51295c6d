"""The agent runs on JetPack 6 (Python 3.10): no 3.11-only syntax or stdlib in device/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DEVICE_DIR = Path(__file__).resolve().parents[2] / "device"
MODULES_311 = {"tomllib", "wsgiref.types"}
ATTRIBUTES_311 = {
    ("datetime", "UTC"),
    ("asyncio", "TaskGroup"),
    ("asyncio", "timeout"),
    ("enum", "StrEnum"),
}
NAMES_311 = {"ExceptionGroup", "BaseExceptionGroup", "TaskGroup", "StrEnum"}


def device_files() -> list[Path]:
    return sorted(DEVICE_DIR.rglob("*.py"))


def problems_in(source: str) -> list[str]:
    tree = ast.parse(source, feature_version=(3, 10))  # except* etc. fail here
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in MODULES_311]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in MODULES_311:
                found.append(f"from {node.module} import")
            found += [
                f"from {node.module} import {a.name}"
                for a in node.names
                if (node.module, a.name) in ATTRIBUTES_311
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in ATTRIBUTES_311:
                found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in NAMES_311:
            found.append(node.id)
    return found


def test_device_package_has_python_files() -> None:
    assert len(device_files()) > 5


@pytest.mark.parametrize("path", device_files(), ids=lambda p: str(p.relative_to(DEVICE_DIR)))
def test_device_module_is_python_310_compatible(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    try:
        problems = problems_in(source)
    except SyntaxError as exc:
        pytest.fail(f"{path}: not Python 3.10 syntax: {exc}")
    assert not problems, f"{path}: 3.11-only: {problems}"


@pytest.mark.parametrize(
    "snippet",
    [
        "import tomllib",
        "from datetime import UTC",
        "import datetime\nx = datetime.UTC",
        "import asyncio\nasyncio.TaskGroup()",
        "raise ExceptionGroup('x', [])",
    ],
)
def test_checker_rejects_311_only_features(snippet: str) -> None:
    assert problems_in(snippet)


def test_checker_rejects_except_star() -> None:
    with pytest.raises(SyntaxError):
        problems_in("try:\n    pass\nexcept* ValueError:\n    pass\n")
