"""DynamoDB tables: anomaly groups, feedback and runs (TTL ``ttl``, a stream, the by-start index) and Powertools
idempotency records (TTL ``expiration``)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from constructs import Construct
from sentinel_core.store import GROUPS_BY_START

from infra.common import mark


def _table(scope: Construct, id_: str, pk: str, sk: str | None, ttl: str, role: str, stream: bool = False) -> ddb.Table:
    table = ddb.Table(
        scope,
        id_,
        partition_key=ddb.Attribute(name=pk, type=ddb.AttributeType.STRING),
        sort_key=ddb.Attribute(name=sk, type=ddb.AttributeType.STRING) if sk else None,
        billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
        time_to_live_attribute=ttl,
        point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
        encryption=ddb.TableEncryption.AWS_MANAGED,
        removal_policy=RemovalPolicy.RETAIN if role == "anomaly-table" else RemovalPolicy.DESTROY,
        # New images feed the console's history archive (groups and feedback kept in S3 beyond the 90-day TTL).
        stream=ddb.StreamViewType.NEW_IMAGE if stream else None,
    )
    mark(table, role)
    return table


class StateTables(Construct):
    def __init__(self, scope: Construct, id_: str, *, anomalies: bool) -> None:
        super().__init__(scope, id_)
        self.anomalies: ddb.Table | None = (
            _table(self, "Anomalies", "pk", "sk", "ttl", "anomaly-table", stream=True) if anomalies else None
        )
        if self.anomalies is not None:
            # The console lists groups by time range with a Query on this index (sentinel_core.store.query_groups).
            self.anomalies.add_global_secondary_index(
                index_name=GROUPS_BY_START,
                partition_key=ddb.Attribute(name="pk", type=ddb.AttributeType.STRING),
                sort_key=ddb.Attribute(name="gsi_start", type=ddb.AttributeType.STRING),
                projection_type=ddb.ProjectionType.ALL,
            )
        self.idempotency = _table(self, "Idempotency", "id", None, "expiration", "idempotency-table")

    @staticmethod
    def item_actions(read_only: bool = False) -> list[str]:
        reads = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]
        writes = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
        return reads if read_only else reads + writes
