from __future__ import annotations

import json
from pathlib import Path

from device.state import STATE_FILE, AgentState


def test_executed_command_survives_a_restart(tmp_path: Path) -> None:
    AgentState(tmp_path).mark_executed("trg_a")
    reloaded = AgentState(tmp_path)
    assert reloaded.was_executed("trg_a")
    assert not reloaded.was_executed("trg_b")


def test_executed_ids_are_bounded_oldest_forgotten(tmp_path: Path) -> None:
    state = AgentState(tmp_path, max_executed=3)
    for index in range(5):
        state.mark_executed(f"trg_{index}")
    reloaded = AgentState(tmp_path, max_executed=3)
    assert [reloaded.was_executed(f"trg_{i}") for i in range(5)] == [False, False, True, True, True]


def test_applied_config_and_version_survive_a_restart(tmp_path: Path) -> None:
    AgentState(tmp_path).set_config(7, {"camera": {"warmup": 4}})
    reloaded = AgentState(tmp_path)
    assert reloaded.config_version == 7
    assert reloaded.config == {"camera": {"warmup": 4}}


def test_corrupt_state_file_starts_empty_instead_of_crashing(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    state = AgentState(tmp_path)
    assert state.config_version == 0
    state.mark_executed("trg_x")
    assert json.loads((tmp_path / STATE_FILE).read_text())["executed"] == ["trg_x"]


def test_state_writes_leave_no_temp_files(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    for index in range(10):
        state.mark_executed(f"trg_{index}")
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]
