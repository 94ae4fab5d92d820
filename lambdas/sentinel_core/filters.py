"""Dataset filters (Lookout for Metrics' ``DimensionFilterList``): which dimension values are monitored at all.

A record is kept when, for EVERY filtered dimension (AND), its value is one of that dimension's listed values (OR).
Dimensions that are not filtered take any value. The filter lives in the pipeline spec
(``PipelineSpec.dimension_filter``, so every function gets it in ``SENTINEL_SPEC``) and is applied BEFORE
aggregation: :func:`sentinel_core.aggregate.aggregate` calls :func:`keep` for every record, which is the one place
the live detector (warm-up and every interval) and the backtests (CLI, job, demo) aggregate. A filtered-out value
therefore never becomes a series: it is never scored, grouped or alerted on.

The same filter is rendered for the Lookout engine's metric set (:func:`lookout_dimension_filter_list`) and parsed
from the ``dimension_filter`` context key in either shape (:func:`parse`). Standard library only.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from sentinel_core.records import Record

DimensionFilter = Mapping[str, Collection[str]]


class FilterError(ValueError):
    """A dimension filter that is not ``{"DIM": ["value", ...]}`` or Lookout's ``DimensionFilterList``."""


def parse(raw: Any) -> dict[str, tuple[str, ...]]:
    """``{"DIM": ["a", "b"]}`` or ``[{"DimensionName": "DIM", "DimensionValueList": ["a", "b"]}]`` (Lookout's
    shape) -> ``{"DIM": ("a", "b")}``. Values are compared as text (dimension values are text in records)."""
    if raw is None:
        return {}
    pairs: list[tuple[Any, Any]]
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        pairs = []
        for item in raw:
            if not isinstance(item, Mapping) or set(item) != {"DimensionName", "DimensionValueList"}:
                raise FilterError(
                    'each DimensionFilterList item is {"DimensionName": "...", "DimensionValueList": ["..."]}, '
                    f"got {item!r}"
                )
            pairs.append((item["DimensionName"], item["DimensionValueList"]))
    else:
        raise FilterError(f'must be {{"DIMENSION": ["value", ...]}} or a DimensionFilterList, got {raw!r}')
    out: dict[str, tuple[str, ...]] = {}
    for name, values in pairs:
        if not isinstance(name, str) or not name:
            raise FilterError(f"a dimension name must be a non-empty string, got {name!r}")
        if isinstance(values, str | int | float) and not isinstance(values, bool):
            values = [values]
        if not isinstance(values, list | tuple) or not values:
            raise FilterError(f"dimension {name!r} needs a non-empty list of values, got {values!r}")
        texts: list[str] = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, str | int | float) or str(v) == "":
                raise FilterError(f"dimension {name!r}: a value must be a non-empty string or number, got {v!r}")
            texts.append(str(v))
        if name in out:
            raise FilterError(f"dimension {name!r} is filtered twice")
        out[name] = tuple(dict.fromkeys(texts))
    return out


def keeps(record: Record, dimensions: Sequence[str], dimension_filter: DimensionFilter) -> bool:
    """True when ``record`` passes the filter (AND across filtered dimensions, OR across each one's values)."""
    if not dimension_filter:
        return True
    values = dict(zip(dimensions, record.dimensions, strict=True))
    return all(values.get(name) in allowed for name, allowed in dimension_filter.items())


def keep(records: Iterable[Record], dimensions: Sequence[str], dimension_filter: DimensionFilter) -> Iterator[Record]:
    """The records that pass the filter, streamed (the whole iterable when there is no filter)."""
    if not dimension_filter:
        yield from records
        return
    allowed = {name: frozenset(v) for name, v in dimension_filter.items()}
    for rec in records:
        if keeps(rec, dimensions, allowed):
            yield rec


def lookout_dimension_filter_list(dimension_filter: DimensionFilter) -> list[dict[str, Any]]:
    """The filter as the ``DimensionFilterList`` of a Lookout metric set (CloudFormation's property shape)."""
    return [
        {"DimensionName": name, "DimensionValueList": list(values)} for name, values in sorted(dimension_filter.items())
    ]
