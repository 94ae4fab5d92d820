"""Security evidence from the synthesized templates (README ``security``): the deployed device policy, evaluated.

The ``AWS::IoT::Policy`` of the stack is resolved (intrinsics -> the local runtime's account and region) and run
through ``local_aws.iot_policy``: one certificate can act only as its own thing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sentinel_core.spec import get_preset

from local_aws.iot_policy import Arns, Connection, is_allowed
from local_aws.template import load_assembly
from tests.support.assembly import Synth, SynthCache


def deployed_device_policy(synth: Synth) -> tuple[dict[str, Any], Arns]:
    (template,) = load_assembly(synth.outdir)
    (policy,) = template.of_type("AWS::IoT::Policy")
    doc = template.props(policy)["PolicyDocument"]
    return doc, Arns(template.region, template.account)


@pytest.mark.parametrize("preset", ["air-quality"])
def test_deployed_device_policy_scopes_each_certificate_to_its_own_thing(preset: str, synth_cache: SynthCache) -> None:
    synth: Synth = synth_cache(preset, "builtin")
    spec = get_preset(preset)
    doc, arn = deployed_device_policy(synth)
    me, other = Connection.of_thing("B-101"), "A-1002"
    assert is_allowed(doc, me, "iot:Connect", arn.client("B-101"))
    assert is_allowed(doc, me, "iot:Publish", arn.topic(spec.telemetry_topic("B-101")))
    assert is_allowed(doc, me, "iot:Subscribe", arn.topicfilter(spec.command_topic("B-101")))
    assert is_allowed(doc, me, "iot:Receive", arn.topic(spec.command_topic("B-101")))
    for action, resource in [
        ("iot:Connect", arn.client(other)),
        ("iot:Publish", arn.topic(spec.telemetry_topic(other))),
        ("iot:Publish", arn.topic(spec.command_topic("B-101"))),
        ("iot:Subscribe", arn.topicfilter(spec.command_topic(other))),
        ("iot:Subscribe", arn.topicfilter(spec.telemetry_topic_filter)),
        ("iot:Subscribe", arn.topicfilter("#")),
        ("iot:Receive", arn.topic(spec.command_topic(other))),
        ("iot:RetainPublish", arn.topic(spec.telemetry_topic("B-101"))),
    ]:
        assert not is_allowed(doc, me, action, resource), (action, resource)
    # B-101's certificate presenting A-1002's client id: the thing-name variable has no value -> nothing allowed
    impostor = Connection(client_id=other, attached_things=frozenset({"B-101"}))
    assert not is_allowed(doc, impostor, "iot:Connect", arn.client(other))


def test_non_mqtt_presets_deploy_no_device_policy(synth: Synth) -> None:
    policies = synth.of_type("AWS::IoT::Policy")
    assert bool(policies) == (get_preset(synth.preset).ingest == "iot")


README = Path(__file__).resolve().parents[2] / "README.md"


def security_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- section: security -->")
    end = text.index("<!-- section:", start + 1)
    return text[start:end]


# A full IAM action name in backticks, e.g. `dynamodb:PutItem`; a bare verb (`PutItem`) or a shorthand
# (`dynamodb:GetItem/PutItem`) names one action at most, so it cannot vouch for the others.
LISTED_ACTION = re.compile(r"`([a-z0-9-]+:[A-Za-z0-9]+)`")


def listed_actions(text: str) -> set[str]:
    return set(LISTED_ACTION.findall(text))


def granted_actions(synth: Synth) -> set[str]:
    """Every action an Allow statement of an IAM policy or role (inline policies included) grants."""
    granted: set[str] = set()
    for res in synth.resources.values():
        if res["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::Role"):
            continue
        docs = [res["Properties"].get("PolicyDocument")] + [
            p.get("PolicyDocument") for p in res["Properties"].get("Policies", []) or []
        ]
        for doc in filter(None, docs):
            for stmt in doc["Statement"]:
                if stmt.get("Effect") != "Allow" or "Action" not in stmt:
                    continue
                granted |= set(stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]])
    return granted


def test_listed_actions_are_full_names_only() -> None:
    """Control for the table test below: bare verbs and shorthands do not count as listing an action."""
    text = "`dynamodb:GetItem/PutItem`, `PutItem`, `kinesis:GetRecords`, `ListShards`, s3:GetObject"
    assert listed_actions(text) == {"kinesis:GetRecords"}
    assert {"dynamodb:PutItem", "kinesis:ListShards"} - listed_actions(security_section()) == set()
    assert "s3:DeleteObject" not in listed_actions(security_section())  # never granted, never listed


def test_readme_role_table_names_every_action_the_template_grants(synth: Synth) -> None:
    """The security review lists what each role can do; a new grant in the stack must show up there by name."""
    granted = granted_actions(synth)
    assert {"logs:PutLogEvents", "lambda:InvokeFunction"} <= granted  # every stack: the transform and Firehose
    missing = granted - listed_actions(security_section())
    assert not missing, f"README security section does not name {sorted(missing)} ({synth.preset}/{synth.engine})"
