"""The agent's health report: thermal zones, Jetson GPU load, spool age, diagnostics size."""

from __future__ import annotations

import json
from pathlib import Path

from device.device_commands import fit_report
from device.health import gpu_status, spool_summary, temperatures
from device.spool import Spool


def test_temperatures_read_every_thermal_zone(tmp_path: Path) -> None:
    for index, (kind, milli) in enumerate([("cpu-thermal", "45500"), ("GPU-therm", "51000")]):
        zone = tmp_path / f"thermal_zone{index}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    (tmp_path / "thermal_zone9").mkdir()  # unreadable zones are skipped
    assert temperatures(tmp_path) == {"cpu-thermal": 45.5, "GPU-therm": 51.0}
    assert temperatures(tmp_path / "absent") == {}


def test_gpu_load_where_visible(tmp_path: Path) -> None:
    load = tmp_path / "load"
    load.write_text("375\n")
    assert gpu_status(load) == {"load_percent": 37.5}
    assert gpu_status(tmp_path / "absent") is None


def test_spool_depth_and_oldest_age(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 10_000_000)
    assert spool_summary(spool) == (0, None)
    spool.put(b"\xff\xd8\xffjpeg", {"trigger_id": None}, "a")
    spool.put(b"\xff\xd8\xffjpeg", {"trigger_id": None}, "b")
    depth, oldest = spool_summary(spool)
    assert depth == 2 and oldest is not None and 0 <= oldest < 60


def test_diagnostics_report_drops_oldest_log_lines_to_fit() -> None:
    report = {"versions": {}, "log": [f"{n:05d} " + "x" * 1000 for n in range(300)]}
    fitted = fit_report(report, limit=50_000)
    assert len(json.dumps(fitted).encode()) <= 50_000
    assert fitted["log"][-1].startswith("00299")  # the newest lines are kept
