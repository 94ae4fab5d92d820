"""Step Functions' part: a state machine of the template run in-process, in simulated time.

The Amazon States Language (JSONPath query language) as far as a fan-out needs it, with AWS's semantics:

* states ``Task`` (``arn:aws:states:::lambda:invoke`` with ``Parameters``, or a function ARN as ``Resource``),
  ``Map`` (inline or distributed ``ItemProcessor``, or the older ``Iterator``; ``ItemsPath``, ``ItemSelector`` /
  ``Parameters``, ``ToleratedFailurePercentage`` / ``ToleratedFailureCount``), ``Pass``, ``Choice`` (the comparison
  operators and ``And`` / ``Or`` / ``Not``), ``Succeed``, ``Fail``;
* paths ``InputPath``, ``Parameters`` / ``ItemSelector`` (``"key.$"`` paths, ``$$`` the context object, intrinsic
  functions ``States.Array``, ``States.ArrayRange``, ``States.ArrayLength``, ``States.Format``,
  ``States.JsonToString``, ``States.StringToJson``, ``States.MathAdd``), ``ResultSelector``, ``ResultPath``,
  ``OutputPath``;
* errors: a raising function fails its task with the exception's type as ``Error`` (what Lambda reports as
  ``errorType``) and Lambda's error JSON as ``Cause``; ``Retry`` (``ErrorEquals``, ``MaxAttempts``, ``IntervalSeconds``,
  ``BackoffRate``, ``MaxDelaySeconds``: the wait is counted, not slept) and ``Catch`` (``ErrorEquals``, ``Next``,
  ``ResultPath``), with ``States.ALL`` and ``States.TaskFailed``.

A Map runs its items one after another (the order of a real Map's results is the items' order, whatever the
concurrency). Anything else in a definition raises :class:`StateMachineError` when the machine is loaded, so a
definition the runtime cannot play is refused instead of half-played. Nothing here knows the product: tasks call
``invoke(function_arn, payload)``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Invoke = Callable[[str, Any], Any]  # (function ARN, payload) -> response; raises when the function fails

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_STATE_TYPES = {"Task", "Map", "Pass", "Choice", "Succeed", "Fail"}
_FIELDS: dict[str, set[str]] = {
    "common": {"Type", "Comment", "Next", "End", "InputPath", "OutputPath"},
    "Task": {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "TimeoutSeconds",
             "HeartbeatSeconds"},
    "Map": {"ItemsPath", "ItemSelector", "Parameters", "ItemProcessor", "Iterator", "MaxConcurrency", "ResultPath",
            "ResultSelector", "Retry", "Catch", "ToleratedFailurePercentage", "ToleratedFailureCount", "Label"},
    "Pass": {"Parameters", "Result", "ResultPath"},
    "Choice": {"Choices", "Default"},
    "Succeed": set(),
    "Fail": {"Error", "Cause"},
}  # fmt: skip


class StateMachineError(ValueError):
    """A definition this runtime cannot play (refused at load), or a path that does not resolve."""


class StatesError(Exception):
    """A state failed: ``error`` and ``cause`` as Step Functions reports them."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


@dataclass
class Execution:
    """One execution: its status, output or error, and what happened (state entries, retries, task calls)."""

    arn: str
    name: str
    input: Any
    started: datetime
    status: str = "RUNNING"
    output: Any = None
    error: str = ""
    cause: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    retries: int = 0
    task_calls: int = 0
    waited_seconds: float = 0.0  # what Retry's intervals would have waited

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"executionArn": self.arn, "status": self.status, "retries": self.retries}
        if self.status == "SUCCEEDED":
            out["output"] = self.output
        else:
            out |= {"error": self.error, "cause": self.cause}
        return out


# ----------------------------------------------------------------------------------------------------------------
# Paths and payload templates
# ----------------------------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def _tokens(path: str) -> list[str | int]:
    if path.startswith("$$"):
        rest = path[2:]
    elif path.startswith("$"):
        rest = path[1:]
    else:
        raise StateMachineError(f"path {path!r} does not start with $")
    out: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _TOKEN.match(rest, pos)
        if m is None:
            raise StateMachineError(f"path {path!r}: only .name, [index] and ['name'] steps are supported")
        name, index, quoted, dquoted = m.groups()
        out.append(int(index) if index is not None else (name or quoted or dquoted or ""))
        pos = m.end()
    return out


def get_path(data: Any, path: str, context: Mapping[str, Any] | None = None) -> Any:
    """The value at a JSONPath of ``data`` (``$$...`` reads the context object)."""
    node: Any = dict(context or {}) if path.startswith("$$") else data
    for step in _tokens(path):
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            raise StatesError("States.Runtime", f"the JSONPath {path!r} could not be found in the input") from None
    return node


def set_path(data: Any, path: str | None, value: Any) -> Any:
    """``ResultPath``: ``value`` placed at ``path`` inside (a copy of) ``data``; ``None`` discards the result."""
    if path is None:
        return data
    steps = _tokens(path)
    if not steps:
        return value
    root: Any = json.loads(json.dumps(data)) if isinstance(data, dict | list) else {}
    if not isinstance(root, dict):
        root = {}
    node = root
    for step in steps[:-1]:
        if not isinstance(step, str):
            raise StateMachineError(f"ResultPath {path!r}: array indexes are not allowed")
        if not isinstance(node.get(step), dict):
            node[step] = {}
        node = node[step]
    last = steps[-1]
    if not isinstance(last, str):
        raise StateMachineError(f"ResultPath {path!r}: array indexes are not allowed")
    node[last] = value
    return root


_INTRINSIC = re.compile(r"^States\.(\w+)\((.*)\)$", re.DOTALL)


def _split_args(text: str) -> list[str]:
    args: list[str] = []
    depth, quote, start = 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    if text.strip():
        args.append(text[start:].strip())
    return args


def _argument(arg: str, data: Any, context: Mapping[str, Any]) -> Any:
    if arg.startswith("'") and arg.endswith("'"):
        return re.sub(r"\\(.)", r"\1", arg[1:-1])
    if arg.startswith("$"):
        return get_path(data, arg, context)
    if arg.startswith("States."):
        return intrinsic(arg, data, context)
    if arg == "null":
        return None
    if arg in ("true", "false"):
        return arg == "true"
    try:
        return json.loads(arg)
    except ValueError:
        raise StateMachineError(f"intrinsic argument {arg!r} is not a literal, a path or a function") from None


def intrinsic(expression: str, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate one ``States.*(...)`` intrinsic function."""
    m = _INTRINSIC.match(expression.strip())
    if m is None:
        raise StateMachineError(f"{expression!r} is not an intrinsic function call")
    name, raw = m.groups()
    args = [_argument(a, data, context) for a in _split_args(raw)]
    if name == "Array":
        return list(args)
    if name == "ArrayRange":
        first, last, step = (int(a) for a in args)
        if step == 0:
            raise StatesError("States.Runtime", "States.ArrayRange: the step must not be 0")
        return list(range(first, last + (1 if step > 0 else -1), step))
    if name == "ArrayLength":
        return len(args[0])
    if name == "Format":
        template, *values = args
        parts = str(template).split("{}")
        if len(parts) - 1 != len(values):
            raise StatesError("States.Runtime", f"States.Format: {len(values)} values for {len(parts) - 1} {{}}")
        out = parts[0]
        for value, part in zip(values, parts[1:], strict=True):
            out += (value if isinstance(value, str) else json.dumps(value)) + part
        return out
    if name == "JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "StringToJson":
        return json.loads(str(args[0]))
    if name == "MathAdd":
        return int(args[0]) + int(args[1])
    raise StateMachineError(f"intrinsic function States.{name} is not supported locally")


def render(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """A ``Parameters`` / ``ItemSelector`` / ``ResultSelector`` payload template applied to ``data``."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                expr = str(value)
                out[key[:-2]] = (
                    intrinsic(expr, data, context) if expr.startswith("States.") else get_path(data, expr, context)
                )
            else:
                out[key] = render(value, data, context)
        return out
    if isinstance(template, list):
        return [render(v, data, context) for v in template]
    return template


# ----------------------------------------------------------------------------------------------------------------
# Choice rules
# ----------------------------------------------------------------------------------------------------------------
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "GreaterThan": lambda a, b: bool(a > b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}
_KINDS: dict[str, Callable[[Any], bool]] = {
    "String": lambda v: isinstance(v, str),
    "Numeric": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "Boolean": lambda v: isinstance(v, bool),
    "Timestamp": lambda v: isinstance(v, str),
}


def choice_matches(rule: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> bool:
    if "And" in rule:
        return all(choice_matches(r, data, context) for r in rule["And"])
    if "Or" in rule:
        return any(choice_matches(r, data, context) for r in rule["Or"])
    if "Not" in rule:
        return not choice_matches(rule["Not"], data, context)
    variable = str(rule.get("Variable", ""))
    for op, expected in rule.items():
        if op in ("Variable", "Next"):
            continue
        if op == "IsPresent":
            try:
                get_path(data, variable, context)
                present = True
            except StatesError:
                present = False
            return present == bool(expected)
        value = get_path(data, variable, context)
        if op == "IsNull":
            return (value is None) == bool(expected)
        if op.startswith("Is") and op[2:] in _KINDS:
            return _KINDS[op[2:]](value) == bool(expected)
        for kind, is_kind in _KINDS.items():
            if op.startswith(kind):
                compare = op[len(kind) :]
                if compare.endswith("Path"):
                    compare, expected = compare[:-4], get_path(data, str(expected), context)
                if compare in _COMPARE:
                    return is_kind(value) and _COMPARE[compare](value, expected)
        raise StateMachineError(f"Choice operator {op!r} is not supported locally")
    raise StateMachineError(f"Choice rule {dict(rule)!r} has no operator")


# ----------------------------------------------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------------------------------------------
def _matches(names: list[str], error: str) -> bool:
    if "States.ALL" in names:
        return True
    if "States.TaskFailed" in names and error != "States.Timeout":
        return True
    return error in names


def validate_definition(definition: Mapping[str, Any], where: str = "definition") -> None:
    """Refuse what this runtime does not play (at load, not half-way through an execution)."""
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        raise StateMachineError(f"{where}: only the JSONPath query language is played locally")
    states = definition.get("States")
    if not isinstance(states, dict) or definition.get("StartAt") not in states:
        raise StateMachineError(f"{where}: StartAt must name one of its States")
    for name, state in states.items():
        kind = state.get("Type")
        if kind not in _STATE_TYPES:
            raise StateMachineError(f"{where}: state {name!r} of type {kind!r} is not played locally")
        unknown = set(state) - _FIELDS["common"] - _FIELDS[kind]
        if unknown:
            raise StateMachineError(f"{where}: state {name!r} uses {sorted(unknown)}, not played locally")
        if kind == "Task":
            resource = str(state.get("Resource", ""))
            if resource != LAMBDA_INVOKE and ":function:" not in resource:
                raise StateMachineError(f"{where}: task {name!r} calls {resource!r}; only Lambda tasks are played")
        if kind == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if not isinstance(processor, dict):
                raise StateMachineError(f"{where}: map {name!r} has no ItemProcessor")
            body = {k: v for k, v in processor.items() if k != "ProcessorConfig"}
            validate_definition(body, f"{where} > {name}")
        for target in [state.get("Next"), state.get("Default")] + [c.get("Next") for c in state.get("Choices", [])]:
            if target is not None and target not in states:
                raise StateMachineError(f"{where}: state {name!r} goes to unknown state {target!r}")


class StateMachine:
    """One ``AWS::StepFunctions::StateMachine`` definition, run against ``invoke``."""

    def __init__(self, name: str, arn: str, definition: Mapping[str, Any], invoke: Invoke) -> None:
        validate_definition(definition)
        self.name = name
        self.arn = arn
        self.definition = dict(definition)
        self.invoke = invoke
        self.executions: list[Execution] = []

    def start_execution(self, payload: Any, now: datetime | None = None, name: str | None = None) -> Execution:
        """Run one execution to its end (synchronously) and return it; a failure is its status, never raised."""
        started = (now or datetime.now(UTC)).astimezone(UTC)
        exec_name = name or str(uuid.uuid4())
        arn = self.arn.replace(":stateMachine:", ":execution:") + f":{exec_name}"
        ex = Execution(arn=arn, name=exec_name, input=payload, started=started)
        context = {
            "Execution": {"Id": arn, "Name": exec_name, "StartTime": started.isoformat(), "Input": payload},
            "StateMachine": {"Id": self.arn, "Name": self.name},
        }
        try:
            ex.output = self._run(self.definition, payload, context, ex)
            ex.status = "SUCCEEDED"
        except StatesError as exc:
            ex.status, ex.error, ex.cause = "FAILED", exc.error, exc.cause
        self.executions.append(ex)
        return ex

    # -- interpretation -------------------------------------------------------------------------------------
    def _run(self, definition: Mapping[str, Any], data: Any, context: dict[str, Any], ex: Execution) -> Any:
        states: Mapping[str, Any] = definition["States"]
        name: str | None = str(definition["StartAt"])
        while name is not None:
            state = states[name]
            ex.events.append({"state": name, "type": state["Type"]})
            ctx = {**context, "State": {"Name": name, "EnteredTime": ex.started.isoformat()}}
            data, name = self._step(name, state, data, ctx, ex)
        return data

    def _step(
        self, name: str, state: Mapping[str, Any], data: Any, ctx: dict[str, Any], ex: Execution
    ) -> tuple[Any, str | None]:
        kind = state["Type"]
        if kind == "Succeed":
            return self._output(state, self._input(state, data, ctx), ctx), None
        if kind == "Fail":
            raise StatesError(str(state.get("Error", "States.Fail")), str(state.get("Cause", "")))
        effective = self._input(state, data, ctx)
        if kind == "Choice":
            for rule in state.get("Choices", []):
                if choice_matches(rule, effective, ctx):
                    return self._output(state, effective, ctx), str(rule["Next"])
            if "Default" not in state:
                raise StatesError("States.NoChoiceMatched", f"no choice of state {name!r} matched")
            return self._output(state, effective, ctx), str(state["Default"])
        if kind == "Pass":
            result = (
                render(state["Parameters"], effective, ctx) if "Parameters" in state else state.get("Result", effective)
            )
            return self._finish(state, data, result, ctx)
        try:
            result = self._with_retries(state, effective, ctx, ex)
        except StatesError as exc:
            for catcher in state.get("Catch", []):
                if _matches(list(catcher.get("ErrorEquals", [])), exc.error):
                    error_output = {"Error": exc.error, "Cause": exc.cause}
                    return set_path(data, catcher.get("ResultPath", "$"), error_output), str(catcher["Next"])
            raise
        return self._finish(state, data, result, ctx)

    def _with_retries(self, state: Mapping[str, Any], effective: Any, ctx: dict[str, Any], ex: Execution) -> Any:
        attempts: dict[int, int] = {}
        while True:
            try:
                if state["Type"] == "Task":
                    return self._task(state, effective, ctx, ex)
                return self._map(state, effective, ctx, ex)
            except StatesError as exc:
                retrier = next(
                    (
                        (i, r)
                        for i, r in enumerate(state.get("Retry", []))
                        if _matches(list(r.get("ErrorEquals", [])), exc.error)
                    ),
                    None,
                )
                if retrier is None:
                    raise
                i, r = retrier
                done = attempts.get(i, 0)
                if done >= int(r.get("MaxAttempts", 3)):
                    raise
                attempts[i] = done + 1
                ex.retries += 1
                wait = float(r.get("IntervalSeconds", 1)) * float(r.get("BackoffRate", 2.0)) ** done
                ex.waited_seconds += min(wait, float(r.get("MaxDelaySeconds", wait)))

    def _task(self, state: Mapping[str, Any], effective: Any, ctx: dict[str, Any], ex: Execution) -> Any:
        resource = str(state["Resource"])
        params = render(state["Parameters"], effective, ctx) if "Parameters" in state else effective
        if resource == LAMBDA_INVOKE:
            if not isinstance(params, dict) or "FunctionName" not in params:
                raise StatesError("States.Runtime", "lambda:invoke needs Parameters.FunctionName")
            function, payload = str(params["FunctionName"]), params.get("Payload", effective)
        else:
            function, payload = resource, params
        ex.task_calls += 1
        try:
            response = self.invoke(function, payload)
        except Exception as exc:  # the function failed: Step Functions sees Lambda's error document
            cause = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__})
            raise StatesError(type(exc).__name__, cause) from exc
        if resource == LAMBDA_INVOKE:
            return {"ExecutedVersion": "$LATEST", "Payload": response, "StatusCode": 200}
        return response

    def _map(self, state: Mapping[str, Any], effective: Any, ctx: dict[str, Any], ex: Execution) -> Any:
        items = get_path(effective, str(state.get("ItemsPath", "$")), ctx)
        if not isinstance(items, list):
            raise StatesError("States.Runtime", "the Map's ItemsPath does not select an array")
        processor = dict(state.get("ItemProcessor") or state.get("Iterator") or {})
        processor.pop("ProcessorConfig", None)
        selector = state.get("ItemSelector", state.get("Parameters"))
        tolerated_count = int(state.get("ToleratedFailureCount", 0))
        tolerated_pct = float(state.get("ToleratedFailurePercentage", 0))
        results: list[Any] = []
        failures: list[StatesError] = []
        for index, item in enumerate(items):
            item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": item}}}
            item_input = render(selector, effective, item_ctx) if selector is not None else item
            try:
                results.append(self._run(processor, item_input, item_ctx, ex))
            except StatesError as exc:
                if not (tolerated_count or tolerated_pct):
                    raise
                failures.append(exc)
                results.append({"Error": exc.error, "Cause": exc.cause})
        if failures and (len(failures) > tolerated_count and 100.0 * len(failures) / len(items) > tolerated_pct):
            raise StatesError(
                "States.ExceedToleratedFailureThreshold",
                f"{len(failures)} of {len(items)} items failed; first: {failures[0].error}: {failures[0].cause}",
            )
        return results

    # -- input and output processing -------------------------------------------------------------------------
    @staticmethod
    def _input(state: Mapping[str, Any], data: Any, ctx: dict[str, Any]) -> Any:
        path = state.get("InputPath", "$")
        return {} if path is None else get_path(data, str(path), ctx)

    @staticmethod
    def _output(state: Mapping[str, Any], data: Any, ctx: dict[str, Any]) -> Any:
        path = state.get("OutputPath", "$")
        return {} if path is None else get_path(data, str(path), ctx)

    def _finish(self, state: Mapping[str, Any], data: Any, result: Any, ctx: dict[str, Any]) -> tuple[Any, str | None]:
        if "ResultSelector" in state:
            result = render(state["ResultSelector"], result, ctx)
        merged = set_path(data, state.get("ResultPath", "$"), result)
        nxt = None if state.get("End") else str(state["Next"])
        return self._output(state, merged, ctx), nxt
