"""The one object reader: gzip or plain, streamed in bounded reads, JSON lines or CSV into records."""

from __future__ import annotations

import gzip
import io

import boto3
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from sentinel_core import objects
from sentinel_core.spec import get_preset

AQ = get_preset("air-quality")
LOYALTY = get_preset("loyalty")
GOOD = b'{"TIMESTAMP": "2022-03-20 10:01:00", "LOCATION_ID": "B-101", "CO": 2.5, "SO2": 1, "NO2": 20}\n'


class Chunked:
    """A body that answers at most ``chunk`` bytes per read and remembers the largest read asked for."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data = io.BytesIO(data)
        self.chunk = chunk
        self.largest = 0

    def read(self, n: int = -1, /) -> bytes:
        self.largest = max(self.largest, n if n >= 0 else 1 << 62)
        return self.data.read(min(self.chunk, n) if n >= 0 else self.chunk)


lines_st = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n")), max_size=30
)


@given(lines_st, st.booleans(), st.integers(min_value=1, max_value=64), st.booleans())
def test_plain_and_gzip_give_the_same_lines(lines: list[str], compress: bool, chunk: int, bom: bool) -> None:
    text = "".join(f"{line}\n" for line in lines)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    body = Chunked(gzip.compress(data) if compress else data, chunk)
    assert list(objects.open_text(body)) == [f"{line}\n" for line in lines]
    assert body.largest <= 1 << 20  # streamed in bounded reads (gzip's own buffer at most), never read() it all


def test_json_lines_and_csv_become_records_and_bad_lines_are_counted() -> None:
    bad = objects.BadLines("k")
    recs = list(objects.iter_records(objects.open_text(io.BytesIO(GOOD + b"not json\n\n" + GOOD)), AQ, bad))
    assert len(recs) == 2 and bad.counts == {"not_json": 1} and bad.samples[0].line == 2
    csv = b"timestamp,location_id,points_earned,points_redeemed\n2022-03-20,S1,10,2\n2022-03-21,S1,x,2\n"
    bad = objects.BadLines("k")
    recs = list(objects.iter_records(objects.open_text(io.BytesIO(gzip.compress(csv))), LOYALTY, bad))
    assert len(recs) == 1 and bad.counts == {"bad_measure": 1}


def test_a_damaged_object_keeps_what_was_read_and_counts_once() -> None:
    bad = objects.BadLines("k")
    recs = list(objects.iter_records(objects.open_text(io.BytesIO(gzip.compress(GOOD * 2000)[:-40])), AQ, bad))
    assert 0 < len(recs) < 2000 and bad.counts == {"unreadable_object": 1}


def test_samples_are_bounded_but_every_bad_line_counted() -> None:
    bad = objects.BadLines("k")
    assert len(list(objects.iter_records([GOOD.decode(), *["{nope\n"] * 100], AQ, bad))) == 1
    assert bad.counts == {"not_json": 100} and len(bad.samples) == objects.MAX_SAMPLES


@mock_aws
def test_list_keys_pages_and_skips_folder_placeholders() -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="objects-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for i in range(1005):  # more than one page of list_objects_v2 (1000)
        s3.put_object(Bucket="objects-test", Key=f"p/{i:05d}.json", Body=GOOD)
    s3.put_object(Bucket="objects-test", Key="p/folder/", Body=b"")
    keys = objects.list_keys(s3, "objects-test", "p/")
    assert len(keys) == 1005 and keys == sorted(keys)
    assert list(objects.get_text(s3, "objects-test", keys[0])) == [GOOD.decode()]
