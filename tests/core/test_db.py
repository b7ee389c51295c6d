"""Database helpers: connection failures are recognisable and logged without a traceback."""

from __future__ import annotations

import logging

import pytest

from cloud.core.db import DatabaseUnavailable, log_worker_failure

logger = logging.getLogger("tests.worker")


def test_database_outage_logs_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise DatabaseUnavailable("OSError: connection refused")
    except DatabaseUnavailable:
        log_worker_failure(logger, "pass %d failed", 3)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage() == (
        "pass 3 failed: database unavailable (OSError: connection refused)"
    )


def test_other_failures_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ValueError("bug")
    except ValueError:
        log_worker_failure(logger, "pass failed")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
