"""The deployed Powertools is the tested one: every function's layer is AWS's build of the version pinned in
requirements/lambda.in, for the functions' architecture and runtime, and that pin is the Powertools installed here
(which the unit tests, the demo and the local runtime run)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import aws_lambda as lambda_

from infra.common import MARKER_METADATA_KEY
from infra.powertools import PARAMETER_ROOT, PowertoolsPinError, parameter_name, pinned_version
from tests.support.assembly import Synth, SynthCache

SSM_STRING = "AWS::SSM::Parameter::Value<String>"


def _functions(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        lid: fn
        for lid, fn in synth.of_type("AWS::Lambda::Function").items()
        if MARKER_METADATA_KEY in fn.get("Metadata", {})  # not CDK's own deploy-time helpers
    }


def _layer_parameter(synth: Synth, fn: dict[str, Any]) -> dict[str, Any]:
    (layer,) = fn["Properties"]["Layers"]
    assert set(layer) == {"Ref"}, f"the layer is not resolved from a parameter: {layer}"
    return dict(synth.template["Parameters"][layer["Ref"]])


def test_the_pin_is_the_installed_powertools() -> None:
    assert pinned_version() == metadata.version("aws-lambda-powertools")


def test_every_function_deploys_the_pinned_powertools_for_its_architecture(synth: Synth) -> None:
    version = pinned_version()
    functions = _functions(synth)
    assert functions
    for lid, fn in functions.items():
        props = fn["Properties"]
        (arch,) = props["Architectures"]
        parameter = _layer_parameter(synth, fn)
        assert parameter["Type"] == SSM_STRING, lid
        # resolved by CloudFormation at deploy time from Powertools' public parameter of that exact release
        assert parameter["Default"] == f"{PARAMETER_ROOT}/{arch}/{props['Runtime']}/{version}", lid
        assert arch == "arm64"


def test_a_fallback_arn_replaces_the_lookup(synth_cache: SynthCache) -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:40"
    synth = synth_cache("ecommerce", "builtin", powertools_layer_arn=arn)
    for fn in _functions(synth).values():
        assert fn["Properties"]["Layers"] == [arn]
    defaults = [str(p.get("Default", "")) for p in synth.template.get("Parameters", {}).values()]
    assert not [d for d in defaults if d.startswith(PARAMETER_ROOT)], "no SSM lookup left beside the fallback"


def test_parameter_name_follows_powertools_scheme() -> None:
    name = parameter_name(lambda_.Architecture.ARM_64, lambda_.Runtime.PYTHON_3_12, "3.37.0")
    assert name == "/aws/service/powertools/python/arm64/python3.12/3.37.0"
    name = parameter_name(lambda_.Architecture.X86_64, lambda_.Runtime.PYTHON_3_13, "3.1.0")
    assert name == "/aws/service/powertools/python/x86_64/python3.13/3.1.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aws-lambda-powertools[tracer]==3.37.0\n", "3.37.0"),
        ("# comment\naws_lambda_powertools==3.1.0  # why\n", "3.1.0"),
        ("boto3==1.0\n", None),
        ("aws-lambda-powertools>=3.0\n", None),
        ("aws-lambda-powertools==3.1.0\naws-lambda-powertools==3.2.0\n", None),
    ],
)
def test_pinned_version_reads_exactly_one_exact_pin(tmp_path: Path, text: str, expected: str | None) -> None:
    path = tmp_path / "lambda.in"
    path.write_text(text)
    if expected is None:
        with pytest.raises(PowertoolsPinError, match="exactly once"):
            pinned_version(path)
    else:
        assert pinned_version(path) == expected
