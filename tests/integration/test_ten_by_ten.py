"""Lookout's limits through the machinery: a 10-measure x 10-dimension air-quality stack played on the local
runtime (IoT rule -> Firehose -> transform -> per-interval folders -> scheduled detector), with a dataset filter on
one dimension: the filtered value reaches S3 but never becomes a scored series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sentinel_core import store
from sentinel_core.spec import PipelineSpec

from tests.infra.test_layout_agreement import TEN_BY_TEN
from tests.support.aws import Play

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOCATIONS = ("B-101", "C-7")
KEPT, DROPPED = "line-1", "line-2"


def doc(spec: PipelineSpec, ts: datetime, loc: str, d2: str) -> dict[str, Any]:
    out: dict[str, Any] = {spec.timestamp_column: ts.strftime("%Y-%m-%d %H:%M:%S"), "LOCATION_ID": loc, "D2": d2}
    out.update({d: "x" for d in spec.dimensions if d not in out})
    out.update({m.name: 1.0 + i + (ts.minute % 3) * 0.01 for i, m in enumerate(spec.measures)})
    return out


def test_ten_by_ten_with_a_dataset_filter_through_the_local_runtime(play: Play) -> None:
    pipeline = play("air-quality", **TEN_BY_TEN, dimension_filter='{"D2": ["line-1"]}')
    env = pipeline.env_of("detector")
    spec = PipelineSpec.from_json(env["SENTINEL_SPEC"])
    assert (len(spec.measures), len(spec.dimensions)) == (10, 10) and spec.dimension_filter == {"D2": (KEPT,)}
    pipeline.tick(T0)
    for minute in range(30):
        ts = T0 + timedelta(minutes=minute, seconds=5)
        for loc in LOCATIONS:
            for d2 in (KEPT, DROPPED):
                assert pipeline.publish(spec.telemetry_topic(loc), doc(spec, ts, loc, d2), now=ts) == 1
    results = pipeline.tick(T0 + timedelta(minutes=40))
    detector = pipeline.function("detector").name
    runs = [r for n, _, r in results if n == detector]
    assert runs and all(isinstance(r, dict) for r in runs), runs
    scored = [r for r in runs if r["records"]]
    assert scored, runs
    for r in scored:
        # every record of both D2 values was read (each thing reports for its own location); only line-1's
        # 10 measures x 2 locations were scored
        assert r["bad_records"] == 0
        assert r["series_scored"] == 10 * len(LOCATIONS) * r["intervals_scored"]
    s3 = pipeline.client("s3")
    written = [o["Key"] for o in s3.list_objects_v2(Bucket=pipeline.data_bucket).get("Contents", [])]
    assert any(k.startswith(spec.data_prefix) for k in written)
    raw = store.load_state(s3, pipeline.data_bucket, spec)
    assert raw is not None
    assert DROPPED not in str(raw["detector"]) and KEPT in str(raw["detector"])  # the model never saw line-2
