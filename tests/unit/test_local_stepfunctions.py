"""The local Step Functions player: paths, intrinsics, Map, Choice, Retry and Catch with AWS's semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local_aws.stepfunctions import (
    LAMBDA_INVOKE,
    StateMachine,
    StateMachineError,
    StatesError,
    get_path,
    intrinsic,
    render,
    set_path,
)

ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:fanout"
FN = "arn:aws:lambda:eu-west-1:123456789012:function:work"


class Functions:
    """In-process functions by ARN; ``fail`` maps an ARN to how many calls raise before it succeeds."""

    def __init__(self, **fail: int) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.fail = fail

    def __call__(self, arn: str, payload: Any) -> Any:
        self.calls.append((arn, payload))
        name = arn.rsplit(":", 1)[-1]
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise TimeoutError(f"{name} timed out")
        if name == "boom":
            raise ValueError(f"bad item {payload}")
        return {"seen": payload}


def machine(states: dict[str, Any], start: str, invoke: Functions) -> StateMachine:
    return StateMachine("fanout", ARN, {"StartAt": start, "States": states}, invoke)


def test_paths_read_and_place_values() -> None:
    data = {"a": {"b": [10, {"c": "x"}]}, "k": 1}
    assert get_path(data, "$") == data
    assert get_path(data, "$.a.b[1].c") == "x"
    assert get_path(data, "$['a']['b'][0]") == 10
    assert get_path({}, "$$.Execution.Name", {"Execution": {"Name": "n"}}) == "n"
    assert set_path(data, "$.r.s", 5) == {**data, "r": {"s": 5}}
    assert data.get("r") is None  # the input is not modified
    assert set_path(data, "$", 7) == 7
    assert set_path(data, None, 7) == data  # ResultPath null: the result is discarded
    with pytest.raises(StatesError) as err:
        get_path(data, "$.missing")
    assert err.value.error == "States.Runtime"


@given(st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.integers(), max_size=5), st.integers())
def test_a_value_placed_at_a_path_is_read_back_there(data: dict[str, int], value: int) -> None:
    placed = set_path(data, "$.result.value", value)
    assert get_path(placed, "$.result.value") == value
    assert {k: v for k, v in placed.items() if k != "result"} == {k: v for k, v in data.items() if k != "result"}


def test_intrinsics_and_payload_templates() -> None:
    ctx = {"Execution": {"Id": "e-1"}}
    assert intrinsic("States.ArrayRange(0, 6, 2)", {}, ctx) == [0, 2, 4, 6]
    assert intrinsic("States.Format('shard-{}-of-{}', $.i, $.n)", {"i": 3, "n": 8}, ctx) == "shard-3-of-8"
    assert intrinsic("States.ArrayLength(States.Array(1, 2, 3))", {}, ctx) == 3
    assert intrinsic("States.StringToJson(States.JsonToString($.x))", {"x": {"y": [1]}}, ctx) == {"y": [1]}
    assert intrinsic("States.MathAdd($.n, -1)", {"n": 8}, ctx) == 7
    payload = render({"shard.$": "$.i", "run.$": "$$.Execution.Id", "fixed": {"k": 1}}, {"i": 2}, ctx)
    assert payload == {"shard": 2, "run": "e-1", "fixed": {"k": 1}}
    with pytest.raises(StateMachineError):
        intrinsic("States.Hash($.x, 'SHA-1')", {"x": 1}, ctx)


def test_a_map_runs_each_item_and_keeps_their_order() -> None:
    fns = Functions()
    sm = machine(
        {
            "Shards": {
                "Type": "Map",
                "ItemsPath": "$.shards",
                "ItemSelector": {"shard.$": "$$.Map.Item.Value", "interval.$": "$.interval"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Score",
                    "States": {
                        "Score": {
                            "Type": "Task",
                            "Resource": LAMBDA_INVOKE,
                            "Parameters": {"FunctionName": FN, "Payload.$": "$"},
                            "ResultSelector": {"out.$": "$.Payload.seen"},
                            "End": True,
                        }
                    },
                },
                "ResultPath": "$.shardResults",
                "End": True,
            }
        },
        "Shards",
        fns,
    )
    ex = sm.start_execution({"shards": [2, 0, 1], "interval": "T"})
    assert ex.status == "SUCCEEDED"
    assert [r["out"]["shard"] for r in ex.output["shardResults"]] == [2, 0, 1]
    assert ex.output["interval"] == "T" and len(fns.calls) == 3


def test_retry_counts_attempts_and_backoff_then_catch_takes_over() -> None:
    states: dict[str, Any] = {
        "Work": {
            "Type": "Task",
            "Resource": FN.replace("work", "flaky"),
            "Retry": [{"ErrorEquals": ["TimeoutError"], "MaxAttempts": 2, "IntervalSeconds": 2, "BackoffRate": 3}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}],
            "End": True,
        },
        "Failed": {"Type": "Pass", "Result": "caught", "ResultPath": "$.handled", "End": True},
    }
    recovered = machine(states, "Work", Functions(flaky=2)).start_execution({"x": 1})
    assert recovered.status == "SUCCEEDED" and recovered.retries == 2 and recovered.waited_seconds == 2 + 6
    assert recovered.output == {"seen": {"x": 1}}
    exhausted = machine(states, "Work", Functions(flaky=3)).start_execution({"x": 1})
    assert exhausted.status == "SUCCEEDED" and exhausted.retries == 2
    assert exhausted.output["error"]["Error"] == "TimeoutError" and exhausted.output["handled"] == "caught"


def test_a_failing_item_fails_the_map_unless_tolerated() -> None:
    def fan(tolerated: dict[str, Any]) -> StateMachine:
        work = {"StartAt": "Do", "States": {"Do": {"Type": "Task", "Resource": FN, "End": True}}}
        boom = {
            "StartAt": "Do",
            "States": {"Do": {"Type": "Task", "Resource": FN.replace("work", "boom"), "End": True}},
        }
        return machine(
            {
                "Pick": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.bad", "BooleanEquals": True, "Next": "Bad"}],
                    "Default": "Good",
                },
                "Good": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": work, "End": True},
                "Bad": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": boom, "End": True, **tolerated},
            },
            "Pick",
            Functions(),
        )

    assert fan({}).start_execution({"bad": False, "items": [1, 2]}).status == "SUCCEEDED"
    failed = fan({}).start_execution({"bad": True, "items": [1, 2]})
    assert (failed.status, failed.error) == ("FAILED", "ValueError")
    assert "bad item" in failed.cause and failed.to_dict()["error"] == "ValueError"
    partial = fan({"ToleratedFailurePercentage": 100}).start_execution({"bad": True, "items": [1, 2]})
    assert partial.status == "SUCCEEDED"  # every failure tolerated: the results say which items failed


def test_choice_operators_and_fail_state() -> None:
    states = {
        "Size": {
            "Type": "Choice",
            "Choices": [
                {"Not": {"Variable": "$.n", "IsPresent": True}, "Next": "Missing"},  # a missing path fails a rule
                {"And": [{"Variable": "$.n", "NumericGreaterThan": 10}, {"Variable": "$.n", "IsNumeric": True}],
                 "Next": "Big"},
                {"Variable": "$.name", "StringEqualsPath": "$.expected", "Next": "Named"},
            ],
            "Default": "Small",
        },
        "Big": {"Type": "Pass", "Result": "big", "End": True},
        "Named": {"Type": "Pass", "Result": "named", "End": True},
        "Missing": {"Type": "Fail", "Error": "NoN", "Cause": "n is missing"},
        "Small": {"Type": "Succeed"},
    }  # fmt: skip
    run = machine(states, "Size", Functions()).start_execution
    assert run({"n": 11}).output == "big"
    assert run({"n": 1, "name": "a", "expected": "a"}).output == "named"
    assert run({"n": 1, "name": "a", "expected": "b"}).output == {"n": 1, "name": "a", "expected": "b"}
    missing = run({})
    assert (missing.status, missing.error, missing.cause) == ("FAILED", "NoN", "n is missing")
    no_guard = machine(
        {**states, "Size": {**states["Size"], "Choices": states["Size"]["Choices"][1:]}}, "Size", Functions()
    )
    assert no_guard.start_execution({}).error == "States.Runtime"  # as in AWS: a rule on a missing path fails


@pytest.mark.parametrize(
    ("definition", "why"),
    [
        ({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}, "type 'Wait'"),
        ({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
                                            "End": True}}}, "only Lambda tasks"),
        ({"StartAt": "P", "States": {"P": {"Type": "Pass", "Next": "Q"}}}, "unknown state 'Q'"),
        ({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, "JSONPath"),
        ({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemReader": {}, "ItemProcessor": {
            "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, "End": True}}}, "ItemReader"),
    ],
)  # fmt: skip
def test_what_is_not_played_is_refused_at_load(definition: dict[str, Any], why: str) -> None:
    with pytest.raises(StateMachineError, match=why):
        StateMachine("x", ARN, definition, Functions())
