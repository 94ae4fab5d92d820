"""Series ids: readable, stable and reversible for any dimension value."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from sentinel_core.model import SeriesKey

_text = st.text(min_size=1, max_size=12)


def test_plain_id_is_readable() -> None:
    key = SeriesKey("CO", (("LOCATION_ID", "B-101"),))
    assert key.id == "CO|LOCATION_ID=B-101"
    assert SeriesKey.parse(key.id) == key
    assert key.label == "CO at B-101"


def test_separators_inside_values_survive_the_round_trip() -> None:
    key = SeriesKey("views", (("page_type", "a|b,c=d%"), ("platform", "web")))
    assert key.id.count("|") == 1 and key.id.count(",") == 1
    assert SeriesKey.parse(key.id) == key


@given(measure=_text, dims=st.lists(st.tuples(_text, st.text(max_size=12)), max_size=5))
def test_parse_inverts_id(measure: str, dims: list[tuple[str, str]]) -> None:
    key = SeriesKey(measure, tuple(dims))
    assert SeriesKey.parse(key.id) == key
