"""Read a synthesized CDK cloud assembly and resolve CloudFormation intrinsics to concrete (moto) names.

Only what the local runtime needs: resources, their physical names / ARNs, and ``Ref``, ``Fn::GetAtt``,
``Fn::Join``, ``Fn::Sub``, ``Fn::Select``, ``Fn::Split``, ``Fn::If`` (conditions default to false unless set) and the
pseudo parameters. Physical names are explicit properties when the template sets them, otherwise deterministic
names shaped like CloudFormation's (``<stack>-<logicalId>-<hash>``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"

# Property that carries an explicit physical name, per resource type.
_NAME_PROPS: dict[str, str] = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::KinesisFirehose::DeliveryStream": "DeliveryStreamName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IoT::TopicRule": "RuleName",
    "AWS::Events::Rule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IoT::Policy": "PolicyName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
}


class TemplateError(ValueError):
    """The assembly or template cannot be read or uses something the runtime cannot play."""


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    physical: str = ""  # name (what Ref returns for most types)
    arn: str = ""
    ref: str = ""  # what Ref resolves to


# The ARN of each resource type the stack uses, by its physical name (``Ref`` is the name unless said otherwise).
_ARNS = {
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "AWS::Kinesis::Stream": "arn:aws:kinesis:{region}:{account}:stream/{name}",
    "AWS::KinesisFirehose::DeliveryStream": "arn:aws:firehose:{region}:{account}:deliverystream/{name}",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
    "AWS::IoT::TopicRule": "arn:aws:iot:{region}:{account}:rule/{name}",
    "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{name}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}:*",
    "AWS::StepFunctions::StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{name}",
}


def _digest(*parts: str, n: int = 12) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:n].upper()


class Template:
    """One stack's template with resolved names."""

    def __init__(
        self,
        body: Mapping[str, Any],
        stack_name: str,
        region: str = REGION,
        account: str = ACCOUNT,
        assembly_dir: Path | None = None,
        parameters: Mapping[str, Any] | None = None,
        conditions: Mapping[str, bool] | None = None,
    ) -> None:
        self.body = dict(body)
        self.stack_name = stack_name
        self.region = region
        self.account = account
        self.assembly_dir = assembly_dir
        self.parameters = {
            k: (parameters or {}).get(k, v.get("Default", "")) for k, v in self.body.get("Parameters", {}).items()
        }
        self.conditions = dict(conditions or {})
        self.resources: dict[str, Resource] = {}
        for lid, res in self.body.get("Resources", {}).items():
            self.resources[lid] = Resource(
                lid, res["Type"], dict(res.get("Properties", {})), dict(res.get("Metadata", {}))
            )
        for r in self.resources.values():
            self._name(r)

    # -- naming ---------------------------------------------------------------------------------------------
    def _generated(self, r: Resource) -> str:
        base = f"{self.stack_name}-{r.logical_id}"[:40]
        name = f"{base}-{_digest(self.stack_name, r.logical_id)}"
        return name.lower() if r.type == "AWS::S3::Bucket" else name

    def _name(self, r: Resource) -> None:
        prop = _NAME_PROPS.get(r.type)
        explicit = r.properties.get(prop) if prop else None
        name = str(self.resolve(explicit, _naming=True)) if explicit is not None else self._generated(r)
        if r.type == "AWS::KinesisFirehose::DeliveryStream" and explicit is None:
            name = name[:64]
        r.physical = name
        t = r.type
        if t == "AWS::KMS::Key":
            key_id = _digest(self.stack_name, r.logical_id, n=32).lower()
            key_id = f"{key_id[:8]}-{key_id[8:12]}-{key_id[12:16]}-{key_id[16:20]}-{key_id[20:32]}"
            r.arn, r.ref = f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}", key_id
            return
        fmt = _ARNS.get(t)
        if fmt is None:
            service = t.split("::")[1].lower() if t.count("::") == 2 else "custom"
            fmt = f"arn:aws:{service}:{{region}}:{{account}}:{r.logical_id}"
        r.arn = fmt.format(region=self.region, account=self.account, name=name)
        if t in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
            r.ref = r.arn  # Ref of a topic or a state machine is its ARN
        elif t == "AWS::SQS::Queue":
            r.ref = f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"  # Ref of a queue is its URL
        else:
            r.ref = name

    # -- intrinsics -----------------------------------------------------------------------------------------
    def _pseudo(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/local",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            r = self.resources[name]
            return r.ref or r.physical
        raise TemplateError(f"Ref to unknown {name!r}")

    def get_att(self, logical_id: str, attr: str) -> Any:
        if logical_id not in self.resources:
            raise TemplateError(f"Fn::GetAtt on unknown resource {logical_id!r}")
        r = self.resources[logical_id]
        if attr == "Arn" or (attr.endswith("Arn") and attr not in ("StreamArn",)):
            return r.arn
        if attr == "StreamArn":
            return f"{r.arn}/stream/1970-01-01T00:00:00.000"
        table = {
            "TopicName": r.physical,
            "QueueName": r.physical,
            "QueueUrl": r.ref,
            "DomainName": f"{r.physical}.s3.amazonaws.com",
            "RegionalDomainName": f"{r.physical}.s3.{self.region}.amazonaws.com",
            "Name": r.physical,
            "RoleId": _digest(r.logical_id),
            "KeyId": r.ref,
            "TopicArn": r.arn,
        }
        if attr in table:
            return table[attr]
        return f"{r.physical}.{attr}"

    def resolve(self, value: Any, _naming: bool = False) -> Any:
        """Resolve every intrinsic inside ``value`` (recursively)."""
        if isinstance(value, list):
            return [v for v in (self.resolve(x, _naming) for x in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._pseudo(arg)
            if key == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(lid, attr)
            if key == "Fn::Join":
                sep, parts = arg
                return str(sep).join(str(p) for p in self.resolve(parts, _naming))
            if key == "Fn::Sub":
                return self._sub(arg, _naming)
            if key == "Fn::Select":
                idx, items = arg
                return self.resolve(items, _naming)[int(self.resolve(idx))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text, _naming)).split(sep)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.resolve(yes if self.conditions.get(cond, False) else no, _naming)
            if key == "Fn::GetAZs":
                return [f"{self.region}a", f"{self.region}b", f"{self.region}c"]
            if key == "Fn::ImportValue":
                raise TemplateError(f"Fn::ImportValue {arg!r}: cross-stack imports are not supported locally")
            if key == "Fn::Base64":
                import base64

                return base64.b64encode(str(self.resolve(arg)).encode()).decode()
        return {k: self.resolve(v, _naming) for k, v in value.items()}

    def _sub(self, arg: Any, naming: bool) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1], naming))

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                lid, attr = name.split(".", 1)
                return str(self.get_att(lid, attr))
            return str(self._pseudo(name))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    # -- queries --------------------------------------------------------------------------------------------
    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type in types]

    def props(self, r: Resource) -> dict[str, Any]:
        """The resource's properties with every intrinsic resolved."""
        resolved = self.resolve(r.properties)
        assert isinstance(resolved, dict)
        return resolved


def load_assembly(
    outdir: str | Path, stack: str | None = None, region: str = REGION, account: str = ACCOUNT
) -> list[Template]:
    """Templates of a cloud assembly directory (``cdk.out``); ``stack`` picks one by name or display name."""
    out = Path(outdir)
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        raise TemplateError(f"{out} is not a cloud assembly (no manifest.json); run the synth first")
    manifest = json.loads(manifest_path.read_text())
    templates: list[Template] = []
    for art_id, art in manifest.get("artifacts", {}).items():
        if art.get("type") != "aws:cloudformation:stack":
            continue
        props = art.get("properties", {})
        name = props.get("stackName", art_id)
        if stack and stack not in (name, art_id, art.get("displayName")):
            continue
        body = json.loads((out / props["templateFile"]).read_text())
        templates.append(Template(body, name, region, account, assembly_dir=out))
    if not templates:
        raise TemplateError(f"no CloudFormation stack{' ' + repr(stack) if stack else ''} in {out}")
    return templates
