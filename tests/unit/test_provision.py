"""provision / deprovision against moto's IoT: resources, policy scope, file modes, idempotency, clean removal."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sentinel_core.device_policy import THING_NAME_VARIABLE, device_policy_document
from sentinel_core.spec import get_preset
from typer.testing import CliRunner

from simulator import provisioning
from simulator.cli import app
from simulator.provisioning import DeviceConfig, ProvisionError, deprovision, provision

SPEC = get_preset("air-quality")
ACCOUNT = "123456789012"  # moto's account


@pytest.fixture
def iot() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("iot", region_name="eu-west-1")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_policy_document_is_scoped_to_the_thing() -> None:
    base = f"arn:aws:iot:eu-west-1:{ACCOUNT}"
    doc = device_policy_document(SPEC, "eu-west-1", ACCOUNT, "sensor-1")
    got = {(s["Action"], s["Resource"]) for s in doc["Statement"]}
    assert got == {
        ("iot:Connect", f"{base}:client/sensor-1"),
        ("iot:Publish", f"{base}:topic/sentinel/air-quality/sensor-1/telemetry"),
        ("iot:Subscribe", f"{base}:topicfilter/sentinel/air-quality/sensor-1/commands"),
        ("iot:Receive", f"{base}:topic/sentinel/air-quality/sensor-1/commands"),
    }
    assert all(s["Effect"] == "Allow" and "*" not in s["Resource"] for s in doc["Statement"])
    connect = next(s for s in doc["Statement"] if s["Action"] == "iot:Connect")
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    generic = device_policy_document(SPEC, "cn-north-1", ACCOUNT)
    assert {s["Resource"] for s in generic["Statement"]} >= {
        f"arn:aws-cn:iot:cn-north-1:{ACCOUNT}:client/{THING_NAME_VARIABLE}",
        f"arn:aws-cn:iot:cn-north-1:{ACCOUNT}:topic/sentinel/air-quality/{THING_NAME_VARIABLE}/telemetry",
    }
    with pytest.raises(ValueError, match="no IoT topic root"):
        device_policy_document(get_preset("loyalty"), "eu-west-1", ACCOUNT)


def test_provision_creates_everything_with_private_files(iot: Any, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    result = provision("sensor-1", certs, SPEC)
    cfg = result.config
    assert iot.describe_thing(thingName="sensor-1")["attributes"] == {"preset": "air-quality"}
    cert = iot.describe_certificate(certificateId=cfg.certificate_id)["certificateDescription"]
    assert cert["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName="sensor-1")["principals"] == [cfg.certificate_arn]
    assert [p["policyName"] for p in iot.list_attached_policies(target=cfg.certificate_arn)["policies"]] == [
        "metric-sentinel-sensor-1"
    ]
    doc = json.loads(iot.get_policy(policyName="metric-sentinel-sensor-1")["policyDocument"])
    assert doc == device_policy_document(SPEC, "eu-west-1", ACCOUNT, "sensor-1")
    # moto invents a new endpoint prefix per call; real IoT returns the account's one. The shape is what counts.
    assert re.fullmatch(r"[a-z0-9]+-ats\.iot\.eu-west-1\.amazonaws\.com", cfg.endpoint)
    assert cfg.telemetry_topic == "sentinel/air-quality/sensor-1/telemetry"
    assert cfg.command_topic == "sentinel/air-quality/sensor-1/commands"
    assert mode(certs) == 0o700
    for name in ("device.pem.crt", "private.pem.key", "config.json"):
        assert mode(certs / name) == 0o600, name
    assert (certs / "device.pem.crt").read_text() == cert["certificatePem"]
    assert "PRIVATE KEY" in (certs / "private.pem.key").read_text()
    assert DeviceConfig.load(certs) == cfg
    assert sorted(p.name for p in certs.iterdir()) == ["config.json", "device.pem.crt", "private.pem.key"]


def test_provision_is_idempotent(iot: Any, tmp_path: Path) -> None:
    first = provision("sensor-1", tmp_path, SPEC)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "config.json"}
    again = provision("sensor-1", tmp_path, SPEC)
    assert again.actions == []
    assert replace(again.config, endpoint="") == replace(first.config, endpoint="")  # moto varies the endpoint
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "config.json"} == files
    assert len(iot.list_certificates()["certificates"]) == 1
    assert len(iot.list_policy_versions(policyName="metric-sentinel-sensor-1")["policyVersions"]) == 1
    # A policy someone widened by hand is put back to the least-privilege document as a new default version.
    iot.create_policy_version(
        policyName="metric-sentinel-sensor-1",
        policyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
        ),
        setAsDefault=True,
    )
    fixed = provision("sensor-1", tmp_path, SPEC)
    assert any("updated policy" in a for a in fixed.actions)
    doc = json.loads(iot.get_policy(policyName="metric-sentinel-sensor-1")["policyDocument"])
    assert doc == device_policy_document(SPEC, "eu-west-1", ACCOUNT, "sensor-1")


def test_refuses_a_thing_with_someone_elses_certificate(iot: Any, tmp_path: Path) -> None:
    iot.create_thing(thingName="shared")
    theirs = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    iot.attach_thing_principal(thingName="shared", principal=theirs)
    with pytest.raises(ProvisionError, match="already has 1 certificate"):
        provision("shared", tmp_path / "c", SPEC)
    assert len(iot.list_certificates()["certificates"]) == 1  # nothing created
    forced = provision("shared", tmp_path / "c", SPEC, force=True)
    assert set(iot.list_thing_principals(thingName="shared")["principals"]) == {theirs, forced.config.certificate_arn}
    # Deprovision removes our certificate and policy but keeps their thing and certificate.
    actions = deprovision("shared", tmp_path / "c")
    assert any("kept" in a for a in actions) or "thing" not in forced.config.created
    assert iot.list_thing_principals(thingName="shared")["principals"] == [theirs]
    assert iot.describe_thing(thingName="shared")["thingName"] == "shared"


def test_rotate_replaces_the_certificate(iot: Any, tmp_path: Path) -> None:
    old = provision("sensor-2", tmp_path, SPEC).config
    old_key = (tmp_path / "private.pem.key").read_text()
    new = provision("sensor-2", tmp_path, SPEC, rotate=True).config
    assert new.certificate_id != old.certificate_id
    assert iot.list_thing_principals(thingName="sensor-2")["principals"] == [new.certificate_arn]
    assert [c["certificateId"] for c in iot.list_certificates()["certificates"]] == [new.certificate_id]
    assert (tmp_path / "private.pem.key").read_text() != old_key
    assert mode(tmp_path / "private.pem.key") == 0o600
    assert DeviceConfig.load(tmp_path).certificate_id == new.certificate_id
    with pytest.raises(ProvisionError, match="--rotate needs an existing"):
        provision("sensor-3", tmp_path / "empty", SPEC, rotate=True)


def test_deprovision_leaves_nothing_behind(iot: Any, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    provision("sensor-4", certs, SPEC)
    provision("sensor-4", certs, SPEC, rotate=True)
    actions = deprovision("sensor-4", certs)
    assert any("deleted thing sensor-4" in a for a in actions)
    assert iot.list_things()["things"] == []
    assert iot.list_certificates()["certificates"] == []
    assert iot.list_policies()["policies"] == []
    assert not certs.exists()
    with pytest.raises(ProvisionError, match="run 'python -m simulator provision' first"):
        deprovision("sensor-4", certs)


def test_other_thing_in_the_same_directory_is_refused(iot: Any, tmp_path: Path) -> None:
    provision("sensor-5", tmp_path, SPEC)
    with pytest.raises(ProvisionError, match="holds the credentials of thing 'sensor-5'"):
        provision("sensor-6", tmp_path, SPEC)
    with pytest.raises(ProvisionError, match="was provisioned in region eu-west-1, not us-east-1"):
        provision("sensor-5", tmp_path, SPEC, region="us-east-1")
    with pytest.raises(ProvisionError, match="must be 1-128 characters"):
        provision("bad/name", tmp_path / "x", SPEC)
    with pytest.raises(ProvisionError, match="does not ingest over MQTT"):
        provision("sensor-7", tmp_path / "y", get_preset("loyalty"))


def test_missing_credentials_and_bad_region_are_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProvisionError, match="not a region where AWS IoT Core is available"):
        provision("sensor-1", tmp_path, SPEC, region="eu-westt-1")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ProvisionError, match="no AWS credentials found"):
        provision("sensor-1", tmp_path, SPEC)
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ProvisionError, match="no AWS region"):
        provision("sensor-1", tmp_path, SPEC)


def test_root_ca_download_failure_is_clear(iot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provisioning, "ROOT_CA_URL", "http://127.0.0.1:9/AmazonRootCA1.pem")
    with pytest.raises(ProvisionError, match="cannot download the Amazon root CA"):
        provisioning.download_root_ca(tmp_path / "ca.pem", url=provisioning.ROOT_CA_URL, timeout=2)
    assert not (tmp_path / "ca.pem").exists()


def test_cli_provision_and_deprovision(iot: Any, tmp_path: Path) -> None:
    runner = CliRunner()
    certs = tmp_path / "dev"
    result = runner.invoke(app, ["provision", "--thing", "cli-dev", "--certs-dir", str(certs)])
    assert result.exit_code == 0, result.output
    assert "ready" in result.output
    assert "sentinel/air-quality/cli-dev/telemetry" in result.output
    again = runner.invoke(app, ["provision", "--thing", "cli-dev", "--certs-dir", str(certs)])
    assert "nothing changed" in again.output
    other = runner.invoke(app, ["provision", "--thing", "cli-dev", "--certs-dir", str(tmp_path / "other")])
    assert other.exit_code == 1
    assert "--force" in other.output
    gone = runner.invoke(app, ["deprovision", "--thing", "cli-dev", "--certs-dir", str(certs)])
    assert gone.exit_code == 0, gone.output
    assert iot.list_things()["things"] == []
