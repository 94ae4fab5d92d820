"""DynamoDB tables: anomaly groups, feedback and detector runs (TTL ``ttl``; a stream and the by-start index for the
console) and Powertools idempotency records (TTL ``expiration``).

The builtin engine stores anomaly groups and makes its runs idempotent: ``StateTables`` (both tables). The alert
automation of the IoT presets needs only the idempotency table, with either engine: ``IdempotencyTable``. The stack
creates one of the two under the id ``State``, so the tables keep their logical ids whichever it is.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from constructs import Construct
from sentinel_core.store import GROUPS_BY_START

from infra.common import mark

# The item calls each table's users make (no Batch*, no table-level actions, no Scan: only the operator CLI scans).
# Powertools idempotency: get_item, put_item (conditional), update_item, delete_item (a failed call's record).
IDEMPOTENCY_ACTIONS: list[str] = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
]
# The store and the alert ledger (sentinel_core.store): get_item, query (pk + begins_with), put_item, update_item.
ANOMALY_TABLE_ACTIONS: list[str] = [
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
]
# Union of both, for callers that grant one statement on both tables.
ITEM_ACTIONS: list[str] = [
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
]


def _table(
    scope: Construct, id_: str, pk: str, sk: str | None, ttl: str, *, retain: bool, marker: str, stream: bool = False
) -> ddb.Table:
    table = ddb.Table(
        scope,
        id_,
        partition_key=ddb.Attribute(name=pk, type=ddb.AttributeType.STRING),
        sort_key=ddb.Attribute(name=sk, type=ddb.AttributeType.STRING) if sk else None,
        billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
        time_to_live_attribute=ttl,
        point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
        encryption=ddb.TableEncryption.AWS_MANAGED,
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        # New images feed the console's history archive (groups and feedback kept in S3 beyond the 90-day TTL).
        stream=ddb.StreamViewType.NEW_IMAGE if stream else None,
    )
    mark(table, marker)
    return table


def _idempotency_table(scope: Construct) -> ddb.Table:
    # Idempotency records only bridge retries (they expire): nothing to keep when the stack goes.
    return _table(scope, "Idempotency", "id", None, "expiration", retain=False, marker="idempotency-table")


class StateTables(Construct):
    """The builtin engine's state: anomaly groups with their feedback (kept on stack deletion) and idempotency."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        # Anomaly groups carry the operators' feedback: retained when the stack is deleted.
        self.anomalies = _table(self, "Anomalies", "pk", "sk", "ttl", retain=True, marker="anomaly-table", stream=True)
        # The console lists groups by time range with a Query on this index (sentinel_core.store.query_groups).
        self.anomalies.add_global_secondary_index(
            index_name=GROUPS_BY_START,
            partition_key=ddb.Attribute(name="pk", type=ddb.AttributeType.STRING),
            sort_key=ddb.Attribute(name="gsi_start", type=ddb.AttributeType.STRING),
            projection_type=ddb.ProjectionType.ALL,
        )
        self.idempotency = _idempotency_table(self)


class IdempotencyTable(Construct):
    """Only the idempotency table: the alert automation with the lookout engine (no anomaly groups stored)."""

    def __init__(self, scope: Construct, id_: str) -> None:
        super().__init__(scope, id_)
        self.idempotency = _idempotency_table(self)
