"""Dataset filters: AND across dimensions, OR across values, applied before aggregation in every scoring path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core import backtest, filters
from sentinel_core.aggregate import aggregate
from sentinel_core.records import Record
from sentinel_core.spec import PipelineSpec, SpecError, get_preset

ECOMMERCE = get_preset("ecommerce")  # page_type, platform, marketplace
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def rec(page: str, platform: str, market: str, minute: int = 0) -> Record:
    return Record(T0 + timedelta(minutes=minute), (page, platform, market), {"views": 1.0})


def test_and_across_dimensions_or_across_values() -> None:
    f = {"page_type": ("cart", "checkout"), "platform": ("ios",)}
    kept = list(filters.keep([rec("cart", "ios", "us"), rec("checkout", "ios", "de"), rec("cart", "web", "us"),
                              rec("product", "ios", "us")], ECOMMERCE.dimensions, f))  # fmt: skip
    assert [(r.dimensions[0], r.dimensions[1]) for r in kept] == [("cart", "ios"), ("checkout", "ios")]


def test_lookout_shape_and_mapping_parse_alike_and_render_back() -> None:
    lookout = [{"DimensionName": "platform", "DimensionValueList": ["ios", "android"]}]
    assert filters.parse(lookout) == filters.parse({"platform": ["ios", "android"]}) == {"platform": ("ios", "android")}
    assert filters.lookout_dimension_filter_list(filters.parse(lookout)) == lookout
    assert filters.parse({"LOCATION_ID": 101}) == {"LOCATION_ID": ("101",)}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"platform": []}, "non-empty list"),
        ({"platform": [True]}, "non-empty string or number"),
        ([{"DimensionName": "platform"}], "DimensionValueList"),
        ("platform=ios", "must be"),
        ([{"DimensionName": "p", "DimensionValueList": ["a"]}, {"DimensionName": "p", "DimensionValueList": ["b"]}],
         "filtered twice"),
    ],
)  # fmt: skip
def test_bad_filters_are_named(raw: object, message: str) -> None:
    with pytest.raises(filters.FilterError, match=message):
        filters.parse(raw)


def test_the_spec_refuses_a_filter_on_an_unknown_dimension() -> None:
    with pytest.raises(SpecError, match="not a dimension of ecommerce"):
        ECOMMERCE.with_overrides(dimension_filter={"country": ("de",)})


def test_the_filter_survives_the_spec_environment_json() -> None:
    spec = ECOMMERCE.with_overrides(dimension_filter={"platform": ("ios",)})
    assert PipelineSpec.from_json(spec.to_json()) == spec


def test_a_filtered_value_never_becomes_a_series_live_or_backtest() -> None:
    spec = ECOMMERCE.with_overrides(dimension_filter={"platform": ("ios", "android")})
    rows = [rec("cart", p, "us", m) for m in range(0, 600, 10) for p in ("ios", "android", "web")]
    series = {k for v in aggregate(rows, spec).values() for k in v}
    assert {dict(k.dimensions)["platform"] for k in series} == {"ios", "android"}
    scored = backtest.run_records(iter(rows), spec)  # the backtest job's core: the same aggregation
    assert scored.series == len(series)
    assert {dict(k.dimensions)["platform"] for _, k in scored.scores} == {"ios", "android"}
    unfiltered = {k for v in aggregate(rows, ECOMMERCE).values() for k in v}
    assert len(unfiltered) == 3 * len(series) // 2


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xy"), st.sampled_from("uv")), max_size=30),
    st.dictionaries(st.sampled_from(ECOMMERCE.dimensions), st.sets(st.sampled_from("abcxyuv"), min_size=1)),
)
def test_keep_is_exactly_the_and_of_ors(dims: list[tuple[str, str, str]], raw: dict[str, set[str]]) -> None:
    f = {k: tuple(sorted(v)) for k, v in raw.items()}
    rows = [rec(*d) for d in dims]
    kept = list(filters.keep(rows, ECOMMERCE.dimensions, f))
    expected = [
        r for r in rows if all(dict(zip(ECOMMERCE.dimensions, r.dimensions, strict=True))[k] in v for k, v in f.items())
    ]
    assert kept == expected
