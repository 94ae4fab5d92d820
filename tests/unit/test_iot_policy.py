"""The device policy's scope, proven by evaluating it (local_aws.iot_policy) — and the evaluator itself."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sentinel_core.device_policy import device_policy_document
from sentinel_core.spec import PRESETS, get_preset

from local_aws.iot_policy import (
    Arns,
    Connection,
    PolicyError,
    Request,
    evaluate,
    is_allowed,
    wildcard_match,
)

REGION, ACCOUNT = "eu-west-1", "123456789012"
ARN = Arns(REGION, ACCOUNT)
SPEC = get_preset("air-quality")
IOT_PRESETS = sorted(name for name, spec in PRESETS.items() if spec.topic_root)

# thing names AWS accepts: [a-zA-Z0-9:_-]+, at most 128
THING = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-", min_size=1, max_size=40)


def generic() -> dict[str, Any]:
    """The one policy the stack attaches to every device (thing name as a policy variable)."""
    return device_policy_document(SPEC, REGION, ACCOUNT)


def own(thing: str) -> dict[str, Any]:
    """The per-device policy ``simulator provision`` attaches (thing name written out)."""
    return device_policy_document(SPEC, REGION, ACCOUNT, thing)


def policies(thing: str) -> list[dict[str, Any]]:
    return [generic(), own(thing)]


# -- what one device may do ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc", ["generic", "own"])
def test_device_may_connect_as_itself_publish_its_telemetry_and_receive_its_commands(doc: str) -> None:
    document = generic() if doc == "generic" else own("B-101")
    dev = Connection.of_thing("B-101")
    assert is_allowed(document, dev, "iot:Connect", ARN.client("B-101"))
    assert is_allowed(document, dev, "iot:Publish", ARN.topic("sentinel/air-quality/B-101/telemetry"))
    assert is_allowed(document, dev, "iot:Subscribe", ARN.topicfilter("sentinel/air-quality/B-101/commands"))
    assert is_allowed(document, dev, "iot:Receive", ARN.topic("sentinel/air-quality/B-101/commands"))


@pytest.mark.parametrize("doc", ["generic", "own"])
def test_device_may_not_touch_another_devices_topics(doc: str) -> None:
    document = generic() if doc == "generic" else own("B-101")
    dev = Connection.of_thing("B-101")
    forbidden = [
        ("iot:Connect", ARN.client("B-102")),
        ("iot:Publish", ARN.topic("sentinel/air-quality/B-102/telemetry")),
        ("iot:Publish", ARN.topic("sentinel/air-quality/B-101/commands")),  # cannot forge its own commands
        ("iot:Publish", ARN.topic("sentinel/air-quality/B-102/commands")),  # nor anyone else's
        ("iot:Publish", ARN.topic("sentinel/air-quality/B-101/telemetry/extra")),
        ("iot:Publish", ARN.topic("sentinel/loyalty/B-101/telemetry")),
        ("iot:RetainPublish", ARN.topic("sentinel/air-quality/B-101/telemetry")),
        ("iot:Subscribe", ARN.topicfilter("sentinel/air-quality/B-102/commands")),
        ("iot:Subscribe", ARN.topicfilter("sentinel/air-quality/+/commands")),  # wildcard filters are not granted
        ("iot:Subscribe", ARN.topicfilter("sentinel/air-quality/#")),
        ("iot:Subscribe", ARN.topicfilter("#")),
        ("iot:Subscribe", ARN.topicfilter("sentinel/air-quality/B-101/telemetry")),  # no reading its own uplink
        ("iot:Receive", ARN.topic("sentinel/air-quality/B-102/commands")),
        ("iot:Receive", ARN.topic("sentinel/air-quality/B-102/telemetry")),
    ]
    for action, resource in forbidden:
        result = evaluate(document, dev, Request(action, resource))
        assert result.decision == "implicit-deny", (action, resource, result)


def test_generic_policy_refuses_a_certificate_not_attached_to_the_thing_it_claims() -> None:
    # certificate of B-101 connecting with the client id B-102: the thing name variable has no value
    stolen_name = Connection(client_id="B-102", attached_things=frozenset({"B-101"}))
    result = evaluate(generic(), stolen_name, Request("iot:Connect", ARN.client("B-102")))
    assert result.decision == "implicit-deny"
    assert "ConnectAsItsOwnThing" in result.unresolved
    for action, resource in [
        ("iot:Publish", ARN.topic("sentinel/air-quality/B-102/telemetry")),
        ("iot:Publish", ARN.topic("sentinel/air-quality/B-101/telemetry")),
        ("iot:Receive", ARN.topic("sentinel/air-quality/B-102/commands")),
    ]:
        assert not is_allowed(generic(), stolen_name, action, resource)


def test_per_device_policy_needs_the_thing_attached_to_connect() -> None:
    # a certificate carrying B-101's per-device policy but detached from its thing (e.g. mid-rotation) cannot connect
    detached = Connection(client_id="B-101", attached_things=frozenset())
    assert not is_allowed(own("B-101"), detached, "iot:Connect", ARN.client("B-101"))
    assert is_allowed(own("B-101"), Connection.of_thing("B-101"), "iot:Connect", ARN.client("B-101"))


@pytest.mark.parametrize("client_id", ["*", "?", "+", "#", "B-10?", "B-*", "sentinel/air-quality/*"])
def test_wildcard_client_ids_are_literal_and_grant_nothing(client_id: str) -> None:
    # B-101's certificate connecting with a wildcard-looking client id: substituted values are literal, and the
    # thing name variable has no value because no thing of that name is attached
    dev = Connection.of_thing("B-101", client_id=client_id)
    assert not is_allowed(generic(), dev, "iot:Connect", ARN.client(client_id))
    assert not is_allowed(generic(), dev, "iot:Publish", ARN.topic("sentinel/air-quality/B-101/telemetry"))


def test_every_iot_preset_gives_a_policy_scoped_to_the_device() -> None:
    assert IOT_PRESETS, "at least one preset ingests over MQTT"
    for name in IOT_PRESETS:
        spec = get_preset(name)
        doc = device_policy_document(spec, REGION, ACCOUNT)
        dev = Connection.of_thing("dev-1")
        assert is_allowed(doc, dev, "iot:Publish", ARN.topic(spec.telemetry_topic("dev-1")))
        assert not is_allowed(doc, dev, "iot:Publish", ARN.topic(spec.telemetry_topic("dev-2")))
        assert not is_allowed(doc, dev, "iot:Receive", ARN.topic(spec.command_topic("dev-2")))


def test_non_mqtt_presets_have_no_device_policy() -> None:
    for name, spec in PRESETS.items():
        if not spec.topic_root:
            with pytest.raises(ValueError, match="no IoT topic root"):
                device_policy_document(spec, REGION, ACCOUNT)
            assert name != "air-quality"


@settings(max_examples=200, deadline=None)
@given(a=THING, b=THING)
def test_property_no_device_reaches_another(a: str, b: str) -> None:
    docs = policies(a)
    dev = Connection.of_thing(a)
    assert is_allowed(docs, dev, "iot:Connect", ARN.client(a))
    assert is_allowed(docs, dev, "iot:Publish", ARN.topic(SPEC.telemetry_topic(a)))
    assert is_allowed(docs, dev, "iot:Subscribe", ARN.topicfilter(SPEC.command_topic(a)))
    assert is_allowed(docs, dev, "iot:Receive", ARN.topic(SPEC.command_topic(a)))
    if a != b:
        assert not is_allowed(docs, dev, "iot:Connect", ARN.client(b))
        assert not is_allowed(docs, dev, "iot:Publish", ARN.topic(SPEC.telemetry_topic(b)))
        assert not is_allowed(docs, dev, "iot:Subscribe", ARN.topicfilter(SPEC.command_topic(b)))
        assert not is_allowed(docs, dev, "iot:Receive", ARN.topic(SPEC.command_topic(b)))
        # and b's certificate cannot pose as a
        assert not is_allowed(policies(b), Connection.of_thing(b, client_id=a), "iot:Connect", ARN.client(a))


def test_other_account_or_region_resources_are_not_granted() -> None:
    dev = Connection.of_thing("B-101")
    for arns in (Arns("us-east-1", ACCOUNT), Arns(REGION, "210987654321")):
        assert not is_allowed(generic(), dev, "iot:Publish", arns.topic("sentinel/air-quality/B-101/telemetry"))


# -- the evaluator can say "allowed" to a bad policy: it is not a rubber stamp ----------------------------------------
TUTORIAL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}


def test_the_tutorial_policy_lets_one_certificate_act_as_every_device() -> None:
    dev = Connection.of_thing("B-101")
    assert is_allowed(TUTORIAL, dev, "iot:Connect", ARN.client("B-102"))
    assert is_allowed(TUTORIAL, dev, "iot:Publish", ARN.topic("sentinel/air-quality/B-102/telemetry"))
    assert is_allowed(TUTORIAL, dev, "iot:Subscribe", ARN.topicfilter("#"))


def test_explicit_deny_wins_over_allow_across_policies() -> None:
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "NoB102", "Effect": "Deny", "Action": "iot:Publish", "Resource": "*/B-102/*"}],
    }
    dev = Connection.of_thing("B-101")
    result = evaluate([TUTORIAL, deny], dev, Request("iot:Publish", ARN.topic("sentinel/air-quality/B-102/telemetry")))
    assert result.decision == "deny" and result.denied_by == ("NoB102",)
    assert is_allowed([TUTORIAL, deny], dev, "iot:Publish", ARN.topic("sentinel/air-quality/B-101/telemetry"))


def test_wildcards_star_and_question_mark_but_mqtt_wildcards_are_literal() -> None:
    assert wildcard_match("a/*/c", "a/b/x/c")  # * crosses '/'
    assert wildcard_match("a/?/c", "a/b/c") and not wildcard_match("a/?/c", "a/bb/c")
    assert wildcard_match("a/+/c", "a/+/c") and not wildcard_match("a/+/c", "a/b/c")
    assert wildcard_match("a/#", "a/#") and not wildcard_match("a/#", "a/b")
    assert wildcard_match("iot:pub*", "iot:Publish", case_insensitive=True)
    assert not wildcard_match("Topic/A", "topic/a")


def test_policy_variables_escapes_and_client_id() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{ARN.base}:topic/raw/${{iot:ClientId}}/${{*}}"},
            {"Effect": "Allow", "Action": ["iot:Receive"], "Resource": [f"{ARN.base}:topic/x/*"]},
        ],
    }
    dev = Connection(client_id="c1")
    assert is_allowed(doc, dev, "iot:Publish", ARN.topic("raw/c1/*"))
    assert not is_allowed(doc, dev, "iot:Publish", ARN.topic("raw/c1/anything"))  # ${*} is a literal star
    assert is_allowed(doc, dev, "iot:Receive", ARN.topic("x/y/z"))


def test_not_action_and_not_resource() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "NotAction": "iot:Connect", "NotResource": f"{ARN.base}:topic/secret/*"},
        ],
    }
    dev = Connection(client_id="c1")
    assert is_allowed(doc, dev, "iot:Publish", ARN.topic("open/1"))
    assert not is_allowed(doc, dev, "iot:Publish", ARN.topic("secret/1"))
    assert not is_allowed(doc, dev, "iot:Connect", ARN.client("c1"))


def test_conditions_on_thing_type_and_attributes() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"},
                    "StringLike": {"iot:Connection.Thing.Attributes[site]": "B-*"},
                },
            }
        ],
    }
    topic = ARN.topic("t")
    assert is_allowed(
        doc, Connection.of_thing("d", thing_type="sensor", attributes={"site": "B-1"}), "iot:Publish", topic
    )
    assert not is_allowed(
        doc, Connection.of_thing("d", thing_type="sensor", attributes={"site": "C-1"}), "iot:Publish", topic
    )
    assert not is_allowed(doc, Connection.of_thing("d", attributes={"site": "B-1"}), "iot:Publish", topic)
    assert not is_allowed(doc, Connection(client_id="d"), "iot:Publish", topic)  # no thing: keys have no value


def test_unreadable_policies_are_errors_not_guesses() -> None:
    dev = Connection(client_id="c1")
    bad: list[dict[str, Any]] = [
        {"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*", "Condition": {"IpAddress": {}}}]},
        {"Statement": [{"Effect": "Maybe", "Action": "iot:Publish", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Resource": "*"}]},
        {"Statement": [{"Effect": "Allow", "Action": "iot:Publish"}]},
        {"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/${aws:username}"}]},
        {"Statement": "nope"},
    ]
    for doc in bad:
        with pytest.raises(PolicyError):
            evaluate(doc, dev, Request("iot:Publish", ARN.topic("t")))
    with pytest.raises(PolicyError, match="unknown data-plane action"):
        is_allowed(TUTORIAL, dev, "iot:UpdateThingShadow", ARN.topic("t"))
