"""Local AWS: a synthesized CloudFormation template played offline on moto.

IoT topic rules, Firehose (processor Lambda, dynamic partitioning, buffering, error prefix), Kinesis → Firehose,
EventBridge schedules, S3 notifications, SNS → Lambda, all read from the template; Lambda handlers run in-process
from the assembly's code asset. It imports nothing of the product: whatever runs is what the template deploys.
Enter :func:`offline` around a :class:`LocalPipeline` so nothing can reach a real account.
"""

from local_aws.firehose import Ledger, LocalFirehose, render_firehose_prefix
from local_aws.functions import FakeLambdaContext, LocalFunction
from local_aws.kinesis import LocalKinesis
from local_aws.offline import (
    clear_cold_start_caches,
    offline,
    offline_environment,
    published_iot,
    route_account_iot_endpoint,
)
from local_aws.pipeline import LocalPipeline
from local_aws.template import ACCOUNT, REGION, Template, TemplateError, load_assembly

__all__ = [
    "ACCOUNT",
    "REGION",
    "FakeLambdaContext",
    "Ledger",
    "LocalFirehose",
    "LocalFunction",
    "LocalKinesis",
    "LocalPipeline",
    "Template",
    "TemplateError",
    "clear_cold_start_caches",
    "load_assembly",
    "offline",
    "offline_environment",
    "published_iot",
    "render_firehose_prefix",
    "route_account_iot_endpoint",
]
