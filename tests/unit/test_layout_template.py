"""The runtime's template reader resolves intrinsics to the names it creates in moto."""

from __future__ import annotations

from typing import Any

import pytest

from local_aws.template import Template, TemplateError

BODY: dict[str, Any] = {
    "Parameters": {"Env": {"Type": "String", "Default": "dev"}},
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "Named": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketName": {"Fn::Sub": "data-${AWS::AccountId}-${Env}"}},
        },
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "Fn": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Environment": {
                    "Variables": {
                        "A": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Ref": "Bucket"}, "/*"]]},
                        "B": {"Fn::Sub": ["${X}/${Topic}", {"X": {"Fn::GetAtt": ["Queue", "Arn"]}}]},
                        "C": {"Fn::Select": [1, {"Fn::Split": ["/", "a/b/c"]}]},
                        "D": {"Fn::Sub": "${Bucket.Arn}-${!Literal}"},
                        "E": {"Ref": "AWS::NoValue"},
                    }
                }
            },
        },
    },
}


def test_resolution() -> None:
    t = Template(BODY, "Stack", region="eu-west-1", account="123456789012")
    bucket = t.resources["Bucket"].physical
    assert bucket == bucket.lower() and bucket.startswith("stack-bucket-")
    assert t.resources["Named"].physical == "data-123456789012-dev"
    env = t.props(t.resources["Fn"])["Environment"]["Variables"]
    assert env["A"] == f"arn:aws:s3:::{bucket}/*"
    assert env["B"] == f"arn:aws:sqs:eu-west-1:123456789012:{t.resources['Queue'].physical}/{t.resources['Topic'].arn}"
    assert env["C"] == "b"
    assert env["D"] == f"arn:aws:s3:::{bucket}-${{Literal}}"
    assert env["E"] is None
    assert t.resources["Queue"].ref.startswith("https://sqs.eu-west-1.amazonaws.com/123456789012/")
    assert Template(BODY, "Stack").resources["Bucket"].physical == bucket  # deterministic


def test_unknown_reference_is_a_clear_error() -> None:
    t = Template(BODY, "Stack")
    with pytest.raises(TemplateError, match="unknown"):
        t.resolve({"Ref": "Nope"})
    with pytest.raises(TemplateError, match="unknown"):
        t.resolve({"Fn::GetAtt": ["Nope", "Arn"]})
