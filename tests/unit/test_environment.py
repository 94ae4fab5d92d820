"""The one environment reader: names what is missing or wrong, every failure a ConfigError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core import environment as env
from sentinel_core.alerts import AlertFilter, AlertFilterError


def test_require_names_every_missing_variable_at_once() -> None:
    e = env.Environment({env.DATA_BUCKET: "b", env.ANOMALY_TABLE: ""})
    with pytest.raises(env.ConfigError, match="ANOMALY_TABLE, DETECTOR_ID not set"):
        e.require(env.DATA_BUCKET, env.ANOMALY_TABLE, env.DETECTOR_ID)
    assert e.required(env.DATA_BUCKET) == "b"


def test_optional_treats_empty_as_unset() -> None:
    e = env.Environment({env.CONSOLE_BASE_URL: ""})
    assert e.optional(env.CONSOLE_BASE_URL) is None
    assert env.Environment({env.CONSOLE_BASE_URL: "https://x"}).optional(env.CONSOLE_BASE_URL) == "https://x"


@given(st.integers(min_value=-(10**9), max_value=10**9), st.integers())
def test_integer_reads_whole_numbers_and_defaults_when_unset(value: int, default: int) -> None:
    assert env.Environment({env.SCHEDULE_OFFSET_SECONDS: f" {value} "}).integer(env.SCHEDULE_OFFSET_SECONDS, 0) == value
    assert env.Environment({}).integer(env.SCHEDULE_OFFSET_SECONDS, default) == default


def test_integer_names_the_variable_on_bad_input() -> None:
    with pytest.raises(env.ConfigError, match="SCHEDULE_OFFSET_SECONDS must be a whole number, got '2 minutes'"):
        env.Environment({env.SCHEDULE_OFFSET_SECONDS: "2 minutes"}).integer(env.SCHEDULE_OFFSET_SECONDS, 0)


def test_a_bad_alert_filter_is_a_config_error_naming_it() -> None:
    with pytest.raises(env.ConfigError, match="ALERT_FILTER is not JSON") as err:
        AlertFilter.from_env(None, {env.ALERT_FILTER: "{"})
    assert isinstance(err.value, AlertFilterError)


def test_names_lists_every_constant() -> None:
    constants = {v for k, v in vars(env).items() if k.isupper() and isinstance(v, str)}
    assert constants == env.NAMES
