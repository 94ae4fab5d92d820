"""``local_aws.route_account_iot_endpoint``: the account's ATS data endpoint reaches moto's IoT data plane, whatever
its random prefix holds (a prefix with "s3" in it used to match moto's S3 virtual-host pattern first)."""

from __future__ import annotations

from moto import backend_index

from local_aws import route_account_iot_endpoint


def _first_service(url: str) -> str | None:
    return next((service for service, pattern in backend_index.backend_url_patterns if pattern.match(url)), None)


def test_an_endpoint_prefix_holding_s3_still_reaches_iot_data() -> None:
    url = "https://a1s3b2c3d4e5f6-ats.iot.eu-west-1.amazonaws.com/topics/sentinel/air-quality/B-101/commands"
    assert _first_service(url) == "s3"  # the control: without the route moto takes it for an S3 bucket
    with route_account_iot_endpoint():
        assert _first_service(url) == "iotdata"
    assert _first_service(url) == "s3"  # the route is removed again
