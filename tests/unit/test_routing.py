"""Alert routes: parsing (the synth and the Lambdas run the same parser), their JSON round trip, their targets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core import routing
from sentinel_core.environment import Environment
from sentinel_core.spec import get_preset

SPEC = get_preset("air-quality")
TOPIC = "arn:aws:sns:eu-west-1:123456789012:team"
FN = "arn:aws:lambda:eu-west-1:123456789012:function:open-ticket:live"

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
route = st.fixed_dictionaries(
    {"name": names},
    optional={
        "threshold": st.floats(0, 100, allow_nan=False),
        "measures": st.lists(st.sampled_from(SPEC.measure_names), unique=True, max_size=3),
        "dimensions": st.dictionaries(st.just("LOCATION_ID"), st.lists(st.text("AB-12", min_size=1), min_size=1)),
        "target": st.sampled_from(["topic", TOPIC, FN]),
        "format": st.sampled_from(routing.FORMATS),
    },
)


@given(st.lists(route, max_size=routing.MAX_ALERTS, unique_by=lambda r: r["name"]))
def test_routes_survive_the_environment_round_trip(raw: list[dict[str, object]]) -> None:
    routes = routing.parse_routes(raw, SPEC)
    env = Environment({"ALERT_ROUTES": routing.routes_to_json(routes)})
    assert routing.routes_from_env(SPEC, env) == routes


def test_kinds_and_the_iam_targets() -> None:
    routes = routing.parse_routes(
        [{"name": "a"}, {"name": "b", "target": TOPIC}, {"name": "c", "target": FN}, {"name": "d", "target": TOPIC}],
        SPEC,
    )
    assert [r.kind for r in routes] == ["topic", "sns", "lambda", "sns"]
    assert routing.targets(routes) == ((TOPIC,), (FN,))
    assert routes[0].threshold == SPEC.severity_threshold


def test_no_variable_means_the_one_default_alert() -> None:
    assert routing.routes_from_env(SPEC, Environment({})) == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"name": "a", "threshold": True}], "alert 0 ('a'): 'threshold' must be a number"),
        ([{"name": "a", "target": "arn:aws:sns:eu-west-1:12:x"}], "'target' must be"),
        ([{"name": "a", "dimensions": {"PLACE": ["x"]}}], "alert 0 ('a'): filter names PLACE"),
        ([{"nmae": "a"}], "alert 0: unknown field 'nmae' (did you mean 'name'?)"),
        (["a"], "alert 0 must be an object"),
    ],
)
def test_errors_name_the_alert_and_the_field(raw: object, message: str) -> None:
    with pytest.raises(routing.RouteError) as err:
        routing.parse_routes(raw, SPEC)
    assert message in str(err.value)


def test_a_broken_variable_is_named() -> None:
    with pytest.raises(routing.RouteError, match="ALERT_ROUTES: alert 0"):
        routing.routes_from_env(SPEC, Environment({"ALERT_ROUTES": json.dumps([{"name": "a", "format": "x"}])}))
