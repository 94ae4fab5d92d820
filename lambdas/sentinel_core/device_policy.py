"""The least-privilege AWS IoT policy of one device — shared by the CDK stack and ``simulator provision``.

A device may connect only with its own thing name as client id (and only while that thing is attached to the
certificate it presents), publish only to its own telemetry topic, and subscribe to / receive only its own
command topic. ``thing=None`` gives the generic document built on the IoT policy variable
``${iot:Connection.Thing.ThingName}`` (one policy for every device, as the stack creates it); a thing name gives
the same document with the name written out (the per-device policy ``provision`` attaches).
"""

from __future__ import annotations

from typing import Any

from sentinel_core.spec import PipelineSpec

THING_NAME_VARIABLE = "${iot:Connection.Thing.ThingName}"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def device_policy_document(spec: PipelineSpec, region: str, account: str, thing: str | None = None) -> dict[str, Any]:
    """IAM-style policy document (a dict; ``json.dumps`` it for ``iot:CreatePolicy``)."""
    if not spec.topic_root:
        raise ValueError(f"preset {spec.preset!r} has no IoT topic root: devices do not publish to it over MQTT")
    name = thing if thing is not None else THING_NAME_VARIABLE
    if not name:
        raise ValueError("thing name must not be empty")
    base = f"arn:{partition_of(region)}:iot:{region}:{account}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectAsItsOwnThing",
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{base}:client/{name}",
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Sid": "PublishOwnTelemetry",
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": f"{base}:topic/{spec.telemetry_topic(name)}",
            },
            {
                "Sid": "SubscribeOwnCommands",
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": f"{base}:topicfilter/{spec.command_topic(name)}",
            },
            {
                "Sid": "ReceiveOwnCommands",
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": f"{base}:topic/{spec.command_topic(name)}",
            },
        ],
    }
