"""The transform's shard partition key (the sharded detector): the record's dimension values pick the shard, the
same as ``state_file.shard_of`` everywhere; one shard keeps today's keys; a record of several shards fails."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sentinel_core import environment as env
from sentinel_core import layout, state_file
from transform import app, logic

from tests.unit.test_transform import ARRIVAL, ECOM, GATEWAY, SPEC, b64, envelope, ms, reading


def test_one_shard_keeps_todays_partition_keys() -> None:
    out = logic.transform_record("r", b64(envelope(json.dumps(reading()))), ms(ARRIVAL), SPEC)
    assert out.ok and out.partition_keys == {"interval_date": "20260323", "interval_time": "1005"}
    same = logic.transform_record("r", b64(envelope(json.dumps(reading()))), ms(ARRIVAL), SPEC, shards=1)
    assert same.partition_keys == out.partition_keys


@given(st.sampled_from(["home", "product", "cart", "checkout"]), st.sampled_from(["web", "ios", "android"]),
       st.sampled_from(["US", "DE", "JP"]), st.integers(2, 64))  # fmt: skip
def test_the_shard_key_is_the_shard_of_the_dimension_values(page: str, platform: str, market: str, n: int) -> None:
    doc = {"event_time": "2026-03-23 10:07:00", "page_type": page, "platform": platform, "marketplace": market}
    out = logic.transform_record("r", b64(json.dumps(doc)), ms(ARRIVAL), ECOM, shards=n)
    assert out.ok, out.message
    shard = state_file.shard_of((page, platform, market), n)  # spec.dimensions order
    assert out.partition_keys["shard"] == layout.shard_label(shard)
    folder = layout.firehose_prefix(ECOM, n)
    for k, v in out.partition_keys.items():
        folder = folder.replace(f"!{{partitionKeyFromLambda:{k}}}", v)
    assert folder == layout.shard_folder(out.timestamp or ARRIVAL, ECOM, shard)


def test_a_record_of_several_shards_fails_like_one_of_several_intervals() -> None:
    # L5 and L9 are in different shards of 4, L5 and L6 in the same one
    assert state_file.shard_of(("L5",), 4) != state_file.shard_of(("L9",), 4)
    assert state_file.shard_of(("L5",), 4) == state_file.shard_of(("L6",), 4)
    same = "\n".join(json.dumps(reading(ts="2026-03-23 10:06", loc=loc)) for loc in ("L5", "L6"))
    assert logic.transform_record("r", b64(envelope(same, "gw-1")), ms(ARRIVAL), GATEWAY, shards=4).ok
    body = "\n".join(json.dumps(reading(ts="2026-03-23 10:06", loc=loc)) for loc in ("L5", "L9"))
    out = logic.transform_record("r", b64(envelope(body, "gw-1")), ms(ARRIVAL), GATEWAY, shards=4)
    assert not out.ok and out.reason == "mixed_shards"
    one = logic.transform_record("r", b64(envelope(body, "gw-1")), ms(ARRIVAL), GATEWAY, shards=1)
    assert one.ok  # unsharded, the gateway's message is one record as before


def test_the_handler_reads_the_shard_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env.DETECTOR_SHARDS, raising=False)
    assert app._shards() == 1
    monkeypatch.setenv(env.DETECTOR_SHARDS, "8")
    assert app._shards() == 8
    for bad in ("0", "x"):
        monkeypatch.setenv(env.DETECTOR_SHARDS, bad)
        with pytest.raises(env.ConfigError, match=env.DETECTOR_SHARDS):
            app._shards()
