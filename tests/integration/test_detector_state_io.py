"""The detector's state object on S3 (moto) and the run's garbage-collector pause: the state PUT carries the CRC32 of
exactly the bytes stored, the state is read back whatever the input objects' decompression cap, and the handler's
run pauses the cyclic collector and always gives it back."""

from __future__ import annotations

import base64
import gc
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from detector import app
from moto import mock_aws
from sentinel_core import objects, state_file, store
from sentinel_core.spec import get_preset

from tests.support.aws import REGION

SPEC = get_preset("air-quality")
BUCKET = "state-io"
RECORDS = [(f"CO|LOCATION_ID=L-{i:04d}", bytes(range(i % 251)) * 9) for i in range(300)]
HEADER = {"format": 1, "detector": {"last": 3}, "scored": {}}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client


def test_the_state_put_carries_the_crc32_of_the_stored_bytes(s3: Any) -> None:
    sent: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:  # the HTTP request botocore sends (moto answers it)
        sent.append({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    s3.meta.events.register("before-send.s3.PutObject", capture)
    size = store.save_state(s3, BUCKET, SPEC, HEADER, iter(RECORDS))
    body = s3.get_object(Bucket=BUCKET, Key=store.state_key(SPEC))["Body"].read()
    assert len(body) == size
    assert body == state_file.to_bytes(HEADER, RECORDS)
    (headers,) = sent
    # S3 checks the object against this; botocore computed nothing itself (no aws-chunked body, no trailer)
    assert headers["x-amz-checksum-crc32"] == base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert "x-amz-trailer" not in headers and "aws-chunked" not in headers.get("content-encoding", "")
    header, records = store.read_state(s3.get_object(Bucket=BUCKET, Key=store.state_key(SPEC))["Body"])
    assert header == HEADER and list(records) == RECORDS


def test_the_state_is_not_held_to_the_input_objects_decompression_cap(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state of ~500,000 series unpacks to more than the 1 GiB cap of input objects: it must still be read."""
    client = s3
    store.save_state(client, BUCKET, SPEC, HEADER, iter(RECORDS))
    monkeypatch.setattr(objects, "MAX_DECOMPRESSED_BYTES", 1024)  # far below this state's unpacked size
    _, records = store.read_state(client.get_object(Bucket=BUCKET, Key=store.state_key(SPEC))["Body"])
    assert list(records) == RECORDS
    assert store.STATE_MAX_DECOMPRESSED >= 10 * 1024**3  # what a 10,240 MB function could hold


def test_the_run_pauses_the_cyclic_collector_and_gives_it_back() -> None:
    assert gc.isenabled()
    with app.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), app.collector_paused():
        raise RuntimeError("a failed run")
    assert gc.isenabled()
    gc.disable()
    try:
        with app.collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
