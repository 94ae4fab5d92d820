"""The --skip resume marker: where the detector resumes after a pause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sentinel_core import activation

T = datetime(2026, 3, 2, 12, 7, tzinfo=UTC)  # activation time
STEP = timedelta(minutes=5)


def test_skip_resumes_at_the_interval_that_closed_last_before_activation() -> None:
    # 12:07 with a 120 s offset: the newest interval read by then is 12:00-12:05 -> resume from 12:00
    last = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert activation.resume_after(last, T, "PT5M", 120) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC) - STEP


def test_no_marker_or_a_marker_already_passed_changes_nothing() -> None:
    last = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert activation.resume_after(last, None, "PT5M", 120) == last
    assert activation.resume_after(last, T, "PT5M", 120) == last


def test_marker_text_round_trip_and_errors() -> None:
    assert activation.parse_marker(activation.marker_body(T).decode()) == T
    with pytest.raises(activation.ResumeMarkerError, match="skip_before"):
        activation.parse_marker('{"when": 1}')
