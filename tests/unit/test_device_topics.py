"""MQTT topic filter matching, which routes a received publish to the handler of the subscription it matched."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.device import topic_matches

levels = st.lists(st.text(alphabet="abc-1", min_size=1, max_size=3), min_size=1, max_size=5)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("sentinel/air-quality/+/telemetry", "sentinel/air-quality/sensor-1/telemetry", True),
        ("sentinel/air-quality/+/telemetry", "sentinel/air-quality/sensor-1/commands", False),
        ("sentinel/air-quality/+/telemetry", "sentinel/air-quality/a/b/telemetry", False),
        ("sentinel/#", "sentinel", True),  # '#' also matches the parent level
        ("sentinel/#", "sentinel/a/b", True),
        ("sentinel/#", "other/a", False),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("+", "a", True),
        ("+", "a/b", False),
    ],
)
def test_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@given(levels)
def test_a_topic_matches_itself_and_its_wildcard_forms(parts: list[str]) -> None:
    topic = "/".join(parts)
    assert topic_matches(topic, topic)
    assert topic_matches("#", topic)
    assert topic_matches("/".join("+" for _ in parts), topic)
    assert topic_matches("/".join([*parts[:-1], "#"]), topic)


@given(levels, levels)
def test_a_wildcard_free_filter_matches_only_the_same_topic(a: list[str], b: list[str]) -> None:
    assert topic_matches("/".join(a), "/".join(b)) is (a == b)
