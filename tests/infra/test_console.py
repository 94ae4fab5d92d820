"""The console in the synthesized stack: JWT-protected throttled HTTP API with access logs, a Cognito pool without
self sign-up, the UI behind CloudFront with OAC and the headers of web/headers.json, exact grants, the history
archive and Glue tables, the by-start index the API queries, and alerts linking to the console."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sentinel_core.store import GROUPS_BY_START

from infra.console import FEEDBACK_COLUMNS, GROUP_COLUMNS, HISTORY_PREFIX, THROTTLE_BURST, THROTTLE_RATE
from tests.infra.conftest import Synth
from tests.infra.test_stack import policy_statements_of_role

HEADERS = json.loads((Path(__file__).resolve().parents[2] / "web" / "headers.json").read_text())


@pytest.fixture(params=["air-quality", "loyalty", "ecommerce"])
def builtin(request: pytest.FixtureRequest, synth_cache: Callable[..., Synth]) -> Synth:
    return synth_cache(request.param, "builtin")


def one(synth: Synth, cfn_type: str) -> tuple[str, dict[str, Any]]:
    (item,) = synth.of_type(cfn_type).items()
    return item


def test_lookout_engine_has_no_console(synth_cache: Callable[..., Synth]) -> None:
    synth = synth_cache("air-quality", "lookout")
    assert not synth.of_type("AWS::ApiGatewayV2::Api") and not synth.of_type("AWS::Cognito::UserPool")


def test_api_route_needs_a_cognito_jwt_and_the_stage_throttles_and_logs(builtin: Synth) -> None:
    _, route = one(builtin, "AWS::ApiGatewayV2::Route")
    assert route["Properties"]["RouteKey"] == "POST /api/{operation}"
    assert route["Properties"]["AuthorizationType"] == "JWT"
    _, auth = one(builtin, "AWS::ApiGatewayV2::Authorizer")
    pool_id, _ = builtin.by_marker("console-user-pool")
    assert auth["Properties"]["AuthorizerType"] == "JWT"
    assert pool_id in json.dumps(auth["Properties"]["JwtConfiguration"]["Issuer"])
    _, stage = one(builtin, "AWS::ApiGatewayV2::Stage")
    p = stage["Properties"]
    assert p["StageName"] == "$default"
    assert p["DefaultRouteSettings"] == {"ThrottlingBurstLimit": THROTTLE_BURST, "ThrottlingRateLimit": THROTTLE_RATE}
    assert "DestinationArn" in p["AccessLogSettings"] and "$context.requestId" in p["AccessLogSettings"]["Format"]


def test_user_pool_has_no_self_sign_up_and_requires_mfa(builtin: Synth) -> None:
    _, pool = builtin.by_marker("console-user-pool")
    p = pool["Properties"]
    assert p["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert p["MfaConfiguration"] == "ON" and p["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert p["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12
    _, client = one(builtin, "AWS::Cognito::UserPoolClient")
    c = client["Properties"]
    assert c["GenerateSecret"] is False and c["AllowedOAuthFlows"] == ["code"]


def test_ui_is_private_behind_cloudfront_with_oac_tls_and_security_headers(builtin: Synth) -> None:
    _, bucket = builtin.by_marker("console-web-bucket")
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    _, dist = builtin.by_marker("console-distribution")
    cfg = dist["Properties"]["DistributionConfig"]
    assert cfg["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert cfg["DefaultRootObject"] == "index.html" and "Logging" in cfg
    s3_origin = next(o for o in cfg["Origins"] if "S3OriginConfig" in o)
    assert "OriginAccessControlId" in s3_origin
    (api,) = cfg["CacheBehaviors"]
    assert api["PathPattern"] == "/api/*" and api["ViewerProtocolPolicy"] == "https-only"
    _, policy = one(builtin, "AWS::CloudFront::ResponseHeadersPolicy")
    sec = policy["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert sec["ContentSecurityPolicy"]["ContentSecurityPolicy"] == HEADERS["Content-Security-Policy"]
    assert sec["FrameOptions"]["FrameOption"] == "DENY" and sec["StrictTransportSecurity"]["IncludeSubdomains"]
    oac = builtin.of_type("AWS::CloudFront::OriginAccessControl")
    assert oac and all(
        o["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always" for o in oac.values()
    )


def test_console_api_may_read_the_table_and_index_and_write_feedback_only(builtin: Synth) -> None:
    _, fn = builtin.by_marker("console_api")
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    table_id, table = builtin.by_marker("anomaly-table")
    stmts = {s["Sid"]: s for s in policy_statements_of_role(builtin, role_id) if "Sid" in s}
    assert stmts["ReadGroupsRunsFeedback"]["Action"] == ["dynamodb:GetItem", "dynamodb:Query"]
    assert stmts["WriteFeedback"]["Action"] == ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    read = json.dumps(stmts["ReadGroupsRunsFeedback"]["Resource"])
    assert table_id in read and f"/index/{GROUPS_BY_START}" in read
    actions = {a for s in policy_statements_of_role(builtin, role_id) for a in s["Action"]}
    assert not {a for a in actions if a.startswith(("s3:", "sns:", "kms:")) or a == "dynamodb:Scan"}
    (gsi,) = table["Properties"]["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == GROUPS_BY_START
    assert [k["AttributeName"] for k in gsi["KeySchema"]] == ["pk", "gsi_start"]
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert fn["Properties"]["ReservedConcurrentExecutions"] >= 1


def test_history_archive_and_glue_tables(builtin: Synth) -> None:
    _, mapping = builtin.by_marker("console-archive-stream")
    m = mapping["Properties"]
    assert m["BisectBatchOnFunctionError"] is True and "OnFailure" in m["DestinationConfig"]
    assert "GROUP#" in json.dumps(m["FilterCriteria"]) and "FEEDBACK#" in json.dumps(m["FilterCriteria"])
    for kind, columns in (("groups", GROUP_COLUMNS), ("feedback", FEEDBACK_COLUMNS)):
        _, table = builtin.by_marker(f"console-glue-{kind}")
        t = table["Properties"]["TableInput"]
        assert t["Parameters"]["projection.enabled"] == "true" and t["PartitionKeys"] == [
            {"Name": "day", "Type": "string"}
        ]
        assert f"{HISTORY_PREFIX}{kind}/" in json.dumps(t["StorageDescriptor"]["Location"])
        assert [c["Name"] for c in t["StorageDescriptor"]["Columns"]] == [c for c, _ in columns]


def test_alerts_link_to_the_console_unless_configured(builtin: Synth, synth_cache: Callable[..., Synth]) -> None:
    alerting = "detector" if builtin.preset != "loyalty" else "backtest_job"
    _, fn = builtin.by_marker(alerting)
    dist_id, _ = builtin.by_marker("console-distribution")
    url = fn["Properties"]["Environment"]["Variables"]["CONSOLE_BASE_URL"]
    assert dist_id in json.dumps(url) and "https://" in json.dumps(url)
    own = synth_cache("air-quality", "builtin", console_base_url="https://console.example.org")
    _, det = own.by_marker("detector")
    assert det["Properties"]["Environment"]["Variables"]["CONSOLE_BASE_URL"] == "https://console.example.org"
