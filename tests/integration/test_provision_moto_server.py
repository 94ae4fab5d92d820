"""`provision` honours AWS_ENDPOINT_URL like any boto3 program: run it against a real local moto server process."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from simulator.cli import app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    try:
        yield url
    finally:
        server.stop()


def test_provision_and_deprovision_through_a_moto_server(moto_endpoint: str, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    runner = CliRunner()
    made = runner.invoke(app, ["provision", "--thing", "B-101", "--certs-dir", str(certs), "--region", "eu-west-1"])
    assert made.exit_code == 0, made.output

    # The resources exist in the server process (read back over HTTP, not from an in-process mock).
    iot = boto3.client("iot", region_name="eu-west-1", endpoint_url=moto_endpoint)
    assert iot.describe_thing(thingName="B-101")["thingName"] == "B-101"
    principals = iot.list_thing_principals(thingName="B-101")["principals"]
    assert len(principals) == 1
    policies = iot.list_attached_policies(target=principals[0])["policies"]
    assert len(policies) == 1
    document = json.loads(iot.get_policy(policyName=policies[0]["policyName"])["policyDocument"])
    resources = {s["Resource"] for s in document["Statement"]}
    assert all("B-101" in r and "*" not in r for r in resources)

    private = [p for p in certs.iterdir() if p.is_file()]
    assert private and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)

    gone = runner.invoke(app, ["deprovision", "--thing", "B-101", "--certs-dir", str(certs), "--region", "eu-west-1"])
    assert gone.exit_code == 0, gone.output
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == []
