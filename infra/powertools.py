"""The Powertools layer the functions run with: AWS's published build of exactly the pinned Powertools version.

The version comes from ``requirements/lambda.in`` — the same pin the tests, the demo and the local runtime run
with — and the layer ARN from the public SSM parameter Powertools publishes for every release,
``/aws/service/powertools/python/<arch>/<runtime>/<version>``, resolved by CloudFormation at deploy time (a
parameter of type ``AWS::SSM::Parameter::Value<String>``): no layer number to look up by hand and keep in step.
Where that parameter does not exist (a partition or region without the public layer, an account that mirrors
it), the context key ``powertools_layer_arn`` names the layer instead.
"""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

LAMBDA_REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements" / "lambda.in"
PACKAGE = "aws-lambda-powertools"
PARAMETER_ROOT = "/aws/service/powertools/python"
_PIN = re.compile(r"^aws[-_]lambda[-_]powertools(?:\[[^\]]*\])?==(?P<version>[0-9][0-9A-Za-z.]*)\s*(?:#.*)?$", re.I)


class PowertoolsPinError(ValueError):
    """requirements/lambda.in does not pin Powertools exactly once."""


def pinned_version(path: Path = LAMBDA_REQUIREMENTS) -> str:
    """The ``aws-lambda-powertools==X`` version of ``requirements/lambda.in``."""
    found = [m["version"] for line in path.read_text().splitlines() if (m := _PIN.match(line.strip()))]
    if len(found) != 1:
        raise PowertoolsPinError(f"{path} must pin {PACKAGE}==<version> exactly once, found {found or 'none'}")
    return found[0]


def parameter_name(architecture: lambda_.Architecture, runtime: lambda_.Runtime, version: str) -> str:
    """The public SSM parameter holding the layer ARN of that build, e.g. ``.../arm64/python3.12/3.37.0``."""
    return f"{PARAMETER_ROOT}/{architecture.name}/{runtime.name}/{version}"


def powertools_layer(
    scope: Construct,
    id_: str,
    *,
    architecture: lambda_.Architecture,
    runtime: lambda_.Runtime,
    layer_arn: str = "",
) -> lambda_.ILayerVersion:
    """The layer of the pinned Powertools for ``architecture`` and ``runtime``; ``layer_arn`` (from the context key
    ``powertools_layer_arn``) replaces the SSM lookup where the public parameter is not available."""
    arn = layer_arn or ssm.StringParameter.value_for_string_parameter(
        scope, parameter_name(architecture, runtime, pinned_version())
    )
    return lambda_.LayerVersion.from_layer_version_arn(scope, id_, arn)
