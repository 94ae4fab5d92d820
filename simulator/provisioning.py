"""Device provisioning on AWS IoT Core with boto3: thing, certificate, least-privilege policy, local credentials.

Everything ``provision`` creates is recorded in ``<certs dir>/config.json`` so that running it again changes
nothing, ``--rotate`` can replace the certificate and ``deprovision`` can remove exactly what was made. boto3
honours ``AWS_ENDPOINT_URL``, so all of it runs against a local moto server too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from sentinel_core.device_policy import device_policy_document
from sentinel_core.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

CONFIG_FILE = "config.json"
CERT_FILE = "device.pem.crt"
KEY_FILE = "private.pem.key"
ROOT_CA_FILE = "AmazonRootCA1.pem"
ROOT_CA_URL = "https://www.amazontrust.com/repository/AmazonRootCA1.pem"
MQTT_PORT = 8883
MAX_POLICY_VERSIONS = 5
NO_CREDENTIALS = "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
_THING = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")


class ProvisionError(RuntimeError):
    """Something the user must fix; the message says what and how."""


@dataclass
class DeviceConfig:
    """Contents of ``config.json`` in the certificates directory (what ``publish --certs-dir`` reads)."""

    thing: str
    preset: str
    region: str
    account: str
    endpoint: str
    port: int
    certificate_id: str
    certificate_arn: str
    policy_name: str
    telemetry_topic: str
    command_topic: str
    cert_file: str = CERT_FILE
    key_file: str = KEY_FILE
    ca_file: str | None = None
    created: list[str] = field(default_factory=list)  # AWS resources this tool made ("thing", "policy")

    @property
    def client_id(self) -> str:
        return self.thing

    @classmethod
    def load(cls, certs_dir: Path) -> DeviceConfig:
        path = certs_dir / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise ProvisionError(f"{path} not found: run 'python -m simulator provision' first") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise ProvisionError(f"{path} is not a config written by 'provision': {exc}") from None


@dataclass
class ProvisionResult:
    config: DeviceConfig
    certs_dir: Path
    actions: list[str]  # what changed, for the user ("created thing sensor-1", ...); empty = already in place


def policy_name_for(thing: str) -> str:
    return f"metric-sentinel-{thing}"


def write_private(path: Path, data: str) -> None:
    """Write ``data`` so that only the owner can read it (0600), whatever the umask, replacing atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _iot_client(region: str | None) -> tuple[IoTClient, str, str]:
    session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    name = session.region_name
    if not name:
        raise ProvisionError("no AWS region: pass --region or set AWS_REGION (e.g. eu-west-1)")
    known = set(session.get_available_regions("iot")) | set(session.get_available_regions("iot", "aws-cn"))
    known |= set(session.get_available_regions("iot", "aws-us-gov"))
    if name not in known:
        raise ProvisionError(
            f"region {name!r} is not a region where AWS IoT Core is available; "
            f"choose one of: {', '.join(sorted(known))}"
        )
    if session.get_credentials() is None:
        raise ProvisionError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or run 'aws configure' "
            "(or point AWS_ENDPOINT_URL at a local moto server with any test credentials)"
        )
    with aws_errors("the AWS credentials were refused", name):
        account = session.client("sts").get_caller_identity()["Account"]
    return session.client("iot"), name, account


@contextlib.contextmanager
def aws_errors(refused: str, region: str | None = None) -> Iterator[None]:
    """botocore's failures inside the block as one-line :class:`ProvisionError` messages."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError:
        raise ProvisionError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        ) from None
    except botocore.exceptions.ClientError as exc:
        raise ProvisionError(f"{refused}: {_err(exc)}") from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise ProvisionError(f"cannot reach AWS in region {region}: {exc}") from None


def _err(exc: botocore.exceptions.ClientError) -> str:
    e = exc.response.get("Error", {})
    return f"{e.get('Code', '?')}: {e.get('Message', str(exc))}"


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _exists(call: Callable[[], object]) -> bool:
    try:
        call()
        return True
    except botocore.exceptions.ClientError as exc:
        if _code(exc) == "ResourceNotFoundException":
            return False
        raise


def _ensure_policy(iot: IoTClient, name: str, document: dict[str, Any], actions: list[str]) -> bool:
    """Create the policy or bring its default version to ``document``; True when this call created it."""
    text = json.dumps(document, sort_keys=True)
    try:
        current = iot.get_policy(policyName=name)
    except botocore.exceptions.ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        iot.create_policy(policyName=name, policyDocument=text)
        actions.append(f"created policy {name}")
        return True
    if json.loads(current["policyDocument"]) == document:
        return False
    versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    if len(versions) >= MAX_POLICY_VERSIONS:  # IoT keeps at most five: drop the oldest non-default one
        oldest = min((v for v in versions if not v.get("isDefaultVersion")), key=lambda v: int(v["versionId"]))
        iot.delete_policy_version(policyName=name, policyVersionId=oldest["versionId"])
    iot.create_policy_version(policyName=name, policyDocument=text, setAsDefault=True)
    actions.append(f"updated policy {name} to the current least-privilege document")
    return False


def _new_certificate(iot: IoTClient, certs_dir: Path, thing: str, policy: str, actions: list[str]) -> tuple[str, str]:
    created = iot.create_keys_and_certificate(setAsActive=True)
    cert_id, cert_arn = created["certificateId"], created["certificateArn"]
    write_private(certs_dir / CERT_FILE, created["certificatePem"])
    write_private(certs_dir / KEY_FILE, created["keyPair"]["PrivateKey"])
    iot.attach_policy(policyName=policy, target=cert_arn)
    iot.attach_thing_principal(thingName=thing, principal=cert_arn)
    actions.append(f"created certificate {cert_id[:12]}… and attached it to {thing} and {policy}")
    return cert_id, cert_arn


def _remove_certificate(iot: IoTClient, cert_id: str, cert_arn: str, thing: str, policy: str) -> None:
    for call in (
        lambda: iot.detach_policy(policyName=policy, target=cert_arn),
        lambda: iot.detach_thing_principal(thingName=thing, principal=cert_arn),
        lambda: iot.update_certificate(certificateId=cert_id, newStatus="INACTIVE"),
        lambda: iot.delete_certificate(certificateId=cert_id),
    ):
        try:
            call()
        except botocore.exceptions.ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise


def download_root_ca(dest: Path, url: str = ROOT_CA_URL, timeout: float = 15.0) -> None:
    """Fetch Amazon's root CA (only when asked: the IoT SDK can use the system trust store instead)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URL
            pem = resp.read().decode("ascii")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ProvisionError(
            f"cannot download the Amazon root CA from {url}: {exc}. Download it on a connected machine and "
            f"copy it to {dest}, or leave --download-root-ca out to use the system's trust store"
        ) from None
    if "BEGIN CERTIFICATE" not in pem:
        raise ProvisionError(f"{url} did not return a PEM certificate")
    write_private(dest, pem)


def provision(
    thing: str,
    certs_dir: Path,
    spec: PipelineSpec,
    region: str | None = None,
    force: bool = False,
    rotate: bool = False,
    download_ca: bool = False,
) -> ProvisionResult:
    """Create (or confirm) the thing, its certificate and policy, and write the credentials to ``certs_dir``."""
    if not _THING.match(thing):
        raise ProvisionError(f"thing name {thing!r} must be 1-128 characters of letters, digits, ':', '_' or '-'")
    if not spec.topic_root:
        raise ProvisionError(f"preset {spec.preset!r} does not ingest over MQTT; provision devices for an IoT preset")
    iot, region_name, account = _iot_client(region)
    certs_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(certs_dir, 0o700)
    previous: DeviceConfig | None = None
    if (certs_dir / CONFIG_FILE).exists():
        previous = DeviceConfig.load(certs_dir)
        if previous.thing != thing:
            raise ProvisionError(
                f"{certs_dir} holds the credentials of thing {previous.thing!r}; use another --certs-dir for {thing!r}"
            )
    if previous is not None and previous.region != region_name:
        raise ProvisionError(
            f"{certs_dir} was provisioned in region {previous.region}, not {region_name}: pass --region "
            f"{previous.region}, or use another --certs-dir for a device in {region_name}"
        )
    if rotate and previous is None:
        raise ProvisionError(f"--rotate needs an existing provisioning in {certs_dir} (no {CONFIG_FILE} there)")
    actions: list[str] = []
    created: list[str] = list(previous.created) if previous else []
    with aws_errors("AWS IoT refused a request", region_name):
        if not _exists(lambda: iot.describe_thing(thingName=thing)):
            iot.create_thing(thingName=thing, attributePayload={"attributes": {"preset": spec.preset}})
            actions.append(f"created thing {thing}")
            if "thing" not in created:
                created.append("thing")
        ours = previous.certificate_arn if previous else None
        others = [p for p in iot.list_thing_principals(thingName=thing)["principals"] if p != ours]
        if others and not force:
            raise ProvisionError(
                f"thing {thing!r} already has {len(others)} certificate(s) attached that this directory did not "
                f"create ({', '.join(o.rsplit('/', 1)[-1][:12] + '…' for o in others)}): another device or person "
                "may own it. Choose another --thing, or pass --force to add a certificate anyway"
            )
        policy = policy_name_for(thing)
        made = _ensure_policy(iot, policy, device_policy_document(spec, region_name, account, thing), actions)
        if made and "policy" not in created:
            created.append("policy")

        cert_id = previous.certificate_id if previous else ""
        cert_arn = previous.certificate_arn if previous else ""
        have_cert = bool(previous) and _exists(lambda: iot.describe_certificate(certificateId=cert_id))
        if previous and not have_cert:
            actions.append(
                f"certificate {cert_id[:12]}… recorded in {CONFIG_FILE} no longer exists: creating a new one"
            )
        files_ok = (certs_dir / CERT_FILE).exists() and (certs_dir / KEY_FILE).exists()
        if have_cert and not files_ok:
            raise ProvisionError(
                f"{certs_dir} lacks {CERT_FILE} or {KEY_FILE} of certificate {cert_id[:12]}… (a private key cannot be "
                "downloaded again): run with --rotate to issue a new certificate"
            )
        if rotate and have_cert:
            new_id, new_arn = _new_certificate(iot, certs_dir, thing, policy, actions)
            _remove_certificate(iot, cert_id, cert_arn, thing, policy)
            actions.append(f"removed the previous certificate {cert_id[:12]}…")
            cert_id, cert_arn = new_id, new_arn
        elif not have_cert:
            cert_id, cert_arn = _new_certificate(iot, certs_dir, thing, policy, actions)
        else:  # idempotent re-run: make sure the attachments are still in place
            cert = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
            if cert.get("status") != "ACTIVE":
                iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
                actions.append(f"re-activated certificate {cert_id[:12]}…")
            attached = {p["policyName"] for p in iot.list_attached_policies(target=cert_arn)["policies"]}
            if policy not in attached:
                iot.attach_policy(policyName=policy, target=cert_arn)
                actions.append(f"re-attached policy {policy}")
            if cert_arn not in iot.list_thing_principals(thingName=thing)["principals"]:
                iot.attach_thing_principal(thingName=thing, principal=cert_arn)
                actions.append(f"re-attached the certificate to {thing}")
        endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]

    ca_file = previous.ca_file if previous else None
    if download_ca:
        download_root_ca(certs_dir / ROOT_CA_FILE)
        ca_file = ROOT_CA_FILE
        actions.append(f"downloaded {ROOT_CA_FILE}")
    config = DeviceConfig(
        thing=thing,
        preset=spec.preset,
        region=region_name,
        account=account,
        endpoint=endpoint,
        port=MQTT_PORT,
        certificate_id=cert_id,
        certificate_arn=cert_arn,
        policy_name=policy,
        telemetry_topic=spec.telemetry_topic(thing),
        command_topic=spec.command_topic(thing),
        ca_file=ca_file,
        created=created,
    )
    if previous is None or asdict(previous) != asdict(config):
        write_private(certs_dir / CONFIG_FILE, json.dumps(asdict(config), indent=2) + "\n")
    return ProvisionResult(config, certs_dir, actions)


def deprovision(thing: str, certs_dir: Path, region: str | None = None) -> list[str]:
    """Remove what ``provision`` made for ``thing``: certificate, policy, thing (if ours and unused), local files."""
    config = DeviceConfig.load(certs_dir)
    if config.thing != thing:
        raise ProvisionError(f"{certs_dir} holds the credentials of thing {config.thing!r}, not {thing!r}")
    iot, iot_region, _ = _iot_client(region or config.region)
    actions: list[str] = []
    with aws_errors("AWS IoT refused a request", iot_region):
        _remove_certificate(iot, config.certificate_id, config.certificate_arn, thing, config.policy_name)
        actions.append(f"detached, deactivated and deleted certificate {config.certificate_id[:12]}…")
        if "policy" in config.created and _exists(lambda: iot.get_policy(policyName=config.policy_name)):
            targets = iot.list_targets_for_policy(policyName=config.policy_name)["targets"]
            if targets:
                actions.append(f"kept policy {config.policy_name}: still attached to {len(targets)} other target(s)")
            else:
                for v in iot.list_policy_versions(policyName=config.policy_name)["policyVersions"]:
                    if not v.get("isDefaultVersion"):
                        iot.delete_policy_version(policyName=config.policy_name, policyVersionId=v["versionId"])
                iot.delete_policy(policyName=config.policy_name)
                actions.append(f"deleted policy {config.policy_name} and its versions")
        if "thing" in config.created and _exists(lambda: iot.describe_thing(thingName=thing)):
            principals = iot.list_thing_principals(thingName=thing)["principals"]
            if principals:
                actions.append(f"kept thing {thing}: {len(principals)} other certificate(s) are still attached")
            else:
                iot.delete_thing(thingName=thing)
                actions.append(f"deleted thing {thing}")
    for name in (config.cert_file, config.key_file, config.ca_file, CONFIG_FILE):
        if name and (certs_dir / name).exists():
            (certs_dir / name).unlink()
    actions.append(f"removed the credentials from {certs_dir}")
    with contextlib.suppress(OSError):  # the user keeps other files there
        certs_dir.rmdir()
    return actions
