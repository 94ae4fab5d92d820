"""The anomaly console: a Lookout-shaped HTTP API, its web explorer, sign-in, and the history beyond the table's TTL.

* **API**: API Gateway HTTP API, ``POST /api/{operation}`` -> the ``console_api`` Lambda (read and feedback items of
  the anomaly table and its by-start index, nothing else), a JWT authorizer on the Cognito user pool's app client,
  stage throttling and JSON access logs.
* **Sign-in**: a Cognito user pool without self sign-up (the operator adds users: README "Console"), MFA (TOTP)
  required, a strong password policy; the web app signs in through the managed login with the authorization-code
  flow and PKCE (public client, no secret).
* **Web UI**: ``web/`` in a private, versioned bucket, served by CloudFront through origin access control over TLS
  (HTTP redirected), with a response-headers policy from ``web/headers.json`` (CSP, HSTS, nosniff, frame denial,
  referrer policy); ``/api/*`` goes through the same distribution to the HTTP API, so the page and the API share one
  origin (no CORS). A deploy-time custom resource (the ``console_web`` function) copies the files and writes
  ``config.json`` (user pool domain, client id, measures, dimensions).
* **History**: the table's stream (new images) feeds the ``console_archive`` Lambda, which writes every group and
  every feedback verdict as JSON lines under ``console-history/{groups,feedback}/day=YYYY-MM-DD/`` in the data lake,
  with Glue tables (partition projection on ``day``) so Athena and QuickSight query them beyond the 90-day TTL.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Aws, CfnCustomResource, CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_glue as glue
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct
from sentinel_core import environment as lambda_env
from sentinel_core.store import GROUPS_BY_START

from infra.common import (
    ROOT,
    FunctionSpec,
    SentinelFunction,
    acknowledge,
    encrypted_queue,
    log_group,
    logical_id,
    mark,
)
from infra.config import SentinelConfig
from infra.state import StateTables
from infra.storage import DataLake

WEB_DIR = ROOT / "web"
HISTORY_PREFIX = "console-history/"
# Steady 20 requests/s with bursts of 40: a team browsing the console (a page makes ~5 calls), far below the
# account's 10 000 rps, so a runaway script cannot starve other APIs or run up the Lambda bill.
THROTTLE_RATE = 20
THROTTLE_BURST = 40
# Whole page loads of a team at once; beyond this API Gateway answers 429 and the page retries on the next click.
API_CONCURRENCY = 10
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "user": "$context.authorizer.claims.sub",
    "time": "$context.requestTime",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "status": "$context.status",
    "latencyMs": "$context.responseLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}

GROUP_COLUMNS: list[tuple[str, str]] = [
    ("group_id", "string"),
    ("detector_id", "string"),
    ("measure", "string"),
    ("start", "string"),
    ("end", "string"),
    ("score", "double"),
    ("series_ids", "array<string>"),
    ("contributions", "array<struct<dimension:string,value:string,percent:double>>"),
    ("feedback", "map<string,boolean>"),
    (
        "points",
        "array<struct<series:string,timestamp:string,value:double,expected:double,lower:double,upper:double,"
        "score:double>>",
    ),
    ("archived_at", "string"),
]
FEEDBACK_COLUMNS: list[tuple[str, str]] = [
    ("detector_id", "string"),
    ("group_id", "string"),
    ("series_id", "string"),
    ("is_anomaly", "boolean"),
    ("status", "string"),
    ("created_at", "string"),
    ("applied_at", "string"),
    ("timestamps", "array<string>"),
    ("archived_at", "string"),
]


def security_headers() -> dict[str, str]:
    """The console's response headers (``web/headers.json``: one source for CloudFront and the offline server)."""
    doc: dict[str, Any] = json.loads((WEB_DIR / "headers.json").read_text(encoding="utf-8"))
    return {k: str(v) for k, v in doc.items() if not k.startswith("_")}


class Console(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: SentinelConfig,
        lake: DataLake,
        tables: StateTables,
    ) -> None:
        super().__init__(scope, id_)
        assert tables.anomalies is not None
        self.config = config
        table = tables.anomalies
        self._users(config)
        self.api_fn = self._api_function(config, table)
        self.web_bucket = self._web_bucket(lake)
        self.distribution = self._distribution(lake)
        self.url = f"https://{self.distribution.distribution_domain_name}"
        self._app_client()
        self.http_api = self._http_api(config)
        self._api_behaviour()
        self._deploy_web(config)
        self.archive_fn = self._archive(config, lake, table)
        self._glue(config, lake)
        CfnOutput(self, "ConsoleUrl", value=self.url, description="Anomaly console (sign in with a user pool user)")
        CfnOutput(self, "ConsoleUserPoolId", value=self.user_pool.user_pool_id, description="Add console users here")
        CfnOutput(self, "ConsoleApiUrl", value=self.http_api.api_endpoint, description="Lookout-shaped API (JWT)")

    # -- sign-in --------------------------------------------------------------------------------------------------
    def _users(self, config: SentinelConfig) -> None:
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=f"{config.stack_name}-console",
            self_sign_up_enabled=False,  # the operator adds people (README "Console")
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        mark(self.user_pool, "console-user-pool")
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "Threat protection (advanced security) needs the Cognito Plus feature plan, billed per user; the pool "
            "has no self sign-up, MFA is required and the API is throttled, so the Essentials plan is the default.",
        )
        # The managed login's domain prefix must be unique in the region: the stack name plus the account id.
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=Fn.join("-", [config.stack_name.lower()[:40], Aws.ACCOUNT_ID])
            ),
        )

    def _app_client(self) -> None:
        callback = f"{self.url}/"
        self.client = self.user_pool.add_client(
            "Web",
            generate_secret=False,  # a browser app cannot keep a secret: PKCE instead
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[callback],
                logout_urls=[callback],
            ),
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(1),
            prevent_user_existence_errors=True,
        )

    # -- API ------------------------------------------------------------------------------------------------------
    def _api_function(self, config: SentinelConfig, table: Any) -> SentinelFunction:
        fn = SentinelFunction(
            self,
            "Api",
            config=config,
            fn=FunctionSpec(
                package="console_api",
                description="Lookout-shaped console API: anomaly groups, time series, feedback, runs, data quality",
                timeout=Duration.seconds(15),
                memory_mb=512,
                reserved_concurrency=API_CONCURRENCY,
            ),
            environment={lambda_env.ANOMALY_TABLE: table.table_name, lambda_env.DETECTOR_ID: config.detector_id},
        )
        index_arn = f"{table.table_arn}/index/{GROUPS_BY_START}"
        fn.allow("ReadGroupsRunsFeedback", ["dynamodb:GetItem", "dynamodb:Query"], [table.table_arn, index_arn])
        fn.allow("WriteFeedback", ["dynamodb:PutItem", "dynamodb:UpdateItem"], [table.table_arn])
        return fn

    def _http_api(self, config: SentinelConfig) -> apigw.HttpApi:
        api = apigw.HttpApi(
            self,
            "Http",
            api_name=f"{config.stack_name}-console",
            description="Metric Sentinel console API (Lookout for Metrics operations)",
            create_default_stage=False,
        )
        logs = log_group(self, "AccessLogs", config)
        stage = apigw.HttpStage(
            self,
            "Stage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
        )
        cfn_stage = stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=logs.log_group_arn, format=json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":"))
        )
        authorizer = authorizers.HttpUserPoolAuthorizer(
            "Users", self.user_pool, user_pool_clients=[self.client], identity_source=["$request.header.Authorization"]
        )
        api.add_routes(
            path="/api/{operation}",
            methods=[apigw.HttpMethod.POST],
            integration=integrations.HttpLambdaIntegration("Operations", self.api_fn.function),
            authorizer=authorizer,
        )
        mark(api, "console-api")
        return api

    # -- web ------------------------------------------------------------------------------------------------------
    def _web_bucket(self, lake: DataLake) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Web",
            encryption=s3.BucketEncryption.S3_MANAGED,  # static public-by-design files; OAC reads SSE-S3 directly
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=lake.access_logs,
            server_access_logs_prefix="console-web/",
            lifecycle_rules=[s3.LifecycleRule(id="ExpireOldVersions", noncurrent_version_expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.RETAIN,  # like the stack's other buckets (a non-empty bucket)
        )
        mark(bucket, "console-web-bucket")
        return bucket

    def _distribution(self, lake: DataLake) -> cloudfront.Distribution:
        headers = security_headers()
        policy = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Metric Sentinel console security headers (web/headers.json)",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=headers["Content-Security-Policy"], override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.seconds(63072000), include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
            ),
            custom_headers_behavior=cloudfront.ResponseCustomHeadersBehavior(
                custom_headers=[
                    cloudfront.ResponseCustomHeader(
                        header="Permissions-Policy", value=headers["Permissions-Policy"], override=True
                    )
                ]
            ),
        )
        self.headers_policy = policy
        # CloudFront standard logs need a bucket with ACLs (the log delivery writes with them): its own bucket.
        self.cdn_logs = s3.Bucket(
            self,
            "CdnLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.OBJECT_WRITER,
            server_access_logs_bucket=lake.access_logs,
            server_access_logs_prefix="console-cdn-logs/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireCdnLogs",
                    expiration=Duration.days(self.config.data_retention_days),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        mark(self.cdn_logs, "console-cdn-log-bucket")
        dist = cloudfront.Distribution(
            self,
            "Cdn",
            comment=f"Metric Sentinel console ({self.config.stack_name})",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.web_bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                response_headers_policy=policy,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.cdn_logs,
            log_file_prefix="cdn/",
        )
        mark(dist, "console-distribution")
        acknowledge(
            dist,
            "AwsSolutions-CFR1",
            "The console is for the operator's team wherever they are; sign-in (Cognito, MFA) and the JWT authorizer "
            "gate the data, so no country is blocked by default.",
        )
        acknowledge(
            dist,
            "AwsSolutions-CFR2",
            "A CloudFront web ACL must live in us-east-1 and is billed per ACL and rule; the static files are "
            "public-by-design and every API call needs a Cognito JWT and is throttled at the stage.",
        )
        acknowledge(
            dist,
            "AwsSolutions-CFR4",
            "The distribution uses its *.cloudfront.net name, whose default certificate fixes the viewer TLS policy; "
            "a custom domain with an ACM certificate (TLSv1.2_2021) is the way to raise it.",
        )
        return dist

    def _api_behaviour(self) -> None:
        api_domain = Fn.select(2, Fn.split("/", self.http_api.api_endpoint))
        self.distribution.add_behavior(
            "/api/*",
            origins.HttpOrigin(api_domain, protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY),
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            response_headers_policy=self.headers_policy,
        )

    def _deploy_web(self, config: SentinelConfig) -> None:
        web_config = {
            "mode": "cognito",
            "detectorId": config.detector_id,
            "measures": list(config.spec.measure_names),
            "dimensions": list(config.spec.dimensions),
            "auth": {
                "domain": Fn.join("", [self.domain.domain_name, ".auth.", Aws.REGION, ".amazoncognito.com"]),
                "clientId": self.client.user_pool_client_id,
                "redirectUri": f"{self.url}/",
            },
        }
        # Our own deploy-time function (not CDK's BucketDeployment, whose provider carries wildcard grants and a
        # managed policy): it copies the asset zip's files and config.json into the bucket, then invalidates.
        asset = s3_assets.Asset(self, "WebAsset", path=str(WEB_DIR), exclude=["headers.json", "config.json"])
        fn = SentinelFunction(
            self,
            "WebDeploy",
            config=config,
            fn=FunctionSpec(
                package="console_web",
                description="Deploy time: copies the console's web files and config.json into its bucket",
                timeout=Duration.minutes(2),
                memory_mb=256,
            ),
            environment={},
        )
        fn.allow("ReadWebAsset", ["s3:GetObject"], [asset.bucket.arn_for_objects(asset.s3_object_key)])
        fn.allow("WriteWebFiles", ["s3:PutObject"], [self.web_bucket.arn_for_objects("*")])
        distribution_arn = Stack.of(self).format_arn(
            service="cloudfront",
            region="",
            resource="distribution",
            resource_name=self.distribution.distribution_id,
        )
        fn.allow("Invalidate", ["cloudfront:CreateInvalidation"], [distribution_arn])
        acknowledge(
            fn.role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(self.web_bucket)}.Arn>/*]",
            "The deploy-time copier writes the console's own web files (index.html, app.js, vendor/...) into the "
            "console bucket, which holds nothing else.",
        )
        self.web_files = CfnCustomResource(self, "WebFiles", service_token=fn.function.function_arn)
        self.web_files.add_property_override("AssetBucket", asset.s3_bucket_name)
        self.web_files.add_property_override("AssetKey", asset.s3_object_key)
        self.web_files.add_property_override("WebBucket", self.web_bucket.bucket_name)
        self.web_files.add_property_override("DistributionId", self.distribution.distribution_id)
        self.web_files.add_property_override("Config", web_config)
        mark(self.web_files, "console-web-files")
        self.web_deploy_fn = fn

    # -- history --------------------------------------------------------------------------------------------------
    def _archive(self, config: SentinelConfig, lake: DataLake, table: Any) -> SentinelFunction:
        self.archive_dlq = encrypted_queue(self, "ArchiveDeadLetters", "console-archive-dlq")
        acknowledge(
            self.archive_dlq,
            "AwsSolutions-SQS3",
            "This queue is the on-failure destination of the stream mapping (batches that failed every retry land "
            "here): it is a dead-letter queue itself, cdk-nag only recognises redrive and function DLQs.",
        )
        fn = SentinelFunction(
            self,
            "Archive",
            config=config,
            fn=FunctionSpec(
                package="console_archive",
                description="Writes anomaly groups and feedback to S3 as daily JSON lines (history beyond the TTL)",
                timeout=Duration.seconds(60),
                memory_mb=256,
            ),
            environment={lambda_env.DATA_BUCKET: lake.bucket.bucket_name, lambda_env.HISTORY_PREFIX: HISTORY_PREFIX},
        )
        fn.allow(
            "ReadStream",
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
            [table.table_stream_arn],
        )
        fn.allow("WriteHistory", ["s3:PutObject"], [lake.bucket.arn_for_objects(f"{HISTORY_PREFIX}*")])
        fn.allow("DataKey", ["kms:GenerateDataKey"], [lake.key.key_arn])
        acknowledge(
            fn.role,
            f"AwsSolutions-IAM5[Resource::<{logical_id(lake.bucket)}.Arn>/{HISTORY_PREFIX}*]",
            "The archive writes one object per day partition and stream batch under the history prefix; the keys "
            "are made at run time, nothing else in the lake is writable.",
        )
        mapping = lambda_.EventSourceMapping(
            self,
            "Stream",
            target=fn.function,
            event_source_arn=table.table_stream_arn,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=100,
            max_batching_window=Duration.seconds(60),  # fewer, larger objects: one minute of changes per file
            bisect_batch_on_error=True,
            retry_attempts=5,
            report_batch_item_failures=True,
            on_failure=sources.SqsDlq(self.archive_dlq),
            filters=[
                lambda_.FilterCriteria.filter(
                    {
                        "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                        "dynamodb": {
                            "Keys": {"sk": {"S": [{"prefix": "GROUP#"}, {"prefix": "FEEDBACK#"}]}},
                        },
                    }
                )
            ],
        )
        mark(mapping, "console-archive-stream")
        return fn

    def _glue(self, config: SentinelConfig, lake: DataLake) -> None:
        name = config.detector_id.replace("-", "_").lower()
        self.glue_database = glue.CfnDatabase(
            self,
            "HistoryDatabase",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=f"{name}_console", description="Metric Sentinel anomaly groups and feedback (console history)"
            ),
        )
        mark(self.glue_database, "console-glue-database")
        for kind, columns in (("groups", GROUP_COLUMNS), ("feedback", FEEDBACK_COLUMNS)):
            location = f"s3://{lake.bucket.bucket_name}/{HISTORY_PREFIX}{kind}/"
            table = glue.CfnTable(
                self,
                f"History{kind.title()}",
                catalog_id=Aws.ACCOUNT_ID,
                database_name=f"{name}_console",
                table_input=glue.CfnTable.TableInputProperty(
                    name=kind,
                    description=f"One JSON line per {kind[:-1] if kind == 'groups' else kind} change, by day",
                    table_type="EXTERNAL_TABLE",
                    parameters={
                        "classification": "json",
                        "projection.enabled": "true",
                        "projection.day.type": "date",
                        "projection.day.format": "yyyy-MM-dd",
                        "projection.day.range": "2020-01-01,NOW",
                        "projection.day.interval": "1",
                        "projection.day.interval.unit": "DAYS",
                        "storage.location.template": f"{location}day=${{day}}/",
                    },
                    partition_keys=[glue.CfnTable.ColumnProperty(name="day", type="string")],
                    storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                        location=location,
                        input_format="org.apache.hadoop.mapred.TextInputFormat",
                        output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                        serde_info=glue.CfnTable.SerdeInfoProperty(
                            serialization_library="org.openx.data.jsonserde.JsonSerDe",
                            parameters={"ignore.malformed.json": "true"},
                        ),
                        columns=[glue.CfnTable.ColumnProperty(name=c, type=t) for c, t in columns],
                    ),
                ),
            )
            table.node.add_dependency(self.glue_database)
            mark(table, f"console-glue-{kind}")
