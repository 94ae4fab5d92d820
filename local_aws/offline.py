"""The one offline harness: nothing a local run does can reach a real AWS account.

:func:`offline` is what the demo and the tests enter around a :class:`~local_aws.LocalPipeline`:

* fake credentials and the template's region, with ``AWS_PROFILE`` and ``AWS_ENDPOINT_URL`` removed (no real
  account, no endpoint override), Powertools tracing off;
* moto's ``mock_aws`` for every boto3 call;
* the account-specific IoT data endpoint (``<id>-ats.iot.<region>.amazonaws.com``, what ``iot:DescribeEndpoint``
  returns) routed to moto, which only knows ``data-ats.iot.<region>.amazonaws.com``;
* the cold-start caches (``functools`` caches of clients and settings) of every handler package the template runs
  cleared, so this pipeline's handlers read this stack's environment even when an earlier pipeline or test in the
  same process imported them.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Iterator

from local_aws.functions import environment
from local_aws.pipeline import LocalPipeline
from local_aws.template import ACCOUNT, REGION

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_REMOVED = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SECURITY_TOKEN")
ACCOUNT_IOT_ENDPOINT = r"https?://[a-z0-9]+-ats\.iot\.(.+)\.amazonaws\.com"


def offline_environment(region: str = REGION) -> contextlib.AbstractContextManager[None]:
    """Fake credentials and ``region`` in ``os.environ`` for the duration, then restored exactly."""
    values = {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}
    return environment({**values, "POWERTOOLS_TRACE_DISABLED": "true"}, remove=_REMOVED)


@contextlib.contextmanager
def route_account_iot_endpoint() -> Iterator[None]:
    """Let moto answer the account's ATS data endpoint for the duration."""
    import moto.iotdata.urls as iotdata_urls
    from moto import backend_index

    entry = ("iotdata", re.compile(ACCOUNT_IOT_ENDPOINT))
    iotdata_urls.url_bases.append(ACCOUNT_IOT_ENDPOINT)
    # First, not last: moto takes the first pattern that matches, and its S3 virtual-host pattern matches any
    # host holding "s3", which the account's random endpoint prefix sometimes does (publishes then went to S3).
    backend_index.backend_url_patterns.insert(0, entry)
    try:
        yield
    finally:
        iotdata_urls.url_bases.remove(ACCOUNT_IOT_ENDPOINT)
        backend_index.backend_url_patterns.remove(entry)


def clear_cold_start_caches(packages: Iterable[str]) -> int:
    """Clear every ``functools`` cache defined in an imported module of ``packages``; returns how many.

    The modules stay imported (code may hold references to them); what they cached on their first call (clients,
    settings read from the environment) is computed again on the next one, as in a new Lambda container.
    """
    tops = set(packages)
    cleared = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in tops:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and getattr(value, "__module__", None) == name:
                clear()
                cleared += 1
    return cleared


def published_iot(account: str = ACCOUNT, region: str = REGION) -> list[tuple[str, bytes]]:
    """Every (topic, payload) published through moto's IoT data plane so far."""
    from moto.iotdata.models import iotdata_backends

    return list(iotdata_backends[account][region].published_payloads)


@contextlib.contextmanager
def offline(pipeline: LocalPipeline) -> Iterator[LocalPipeline]:
    """Fake credentials, moto, the IoT endpoint route and cold handlers around ``pipeline``; yields it started."""
    from moto import mock_aws

    with offline_environment(pipeline.region), mock_aws(), route_account_iot_endpoint():
        clear_cold_start_caches(pipeline.handler_packages())
        yield pipeline.start()
