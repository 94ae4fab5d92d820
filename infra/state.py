"""DynamoDB tables: anomaly groups + feedback (TTL ``ttl``) and Powertools idempotency records (TTL ``expiration``)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as ddb
from constructs import Construct

from infra.common import mark


def _table(scope: Construct, id_: str, pk: str, sk: str | None, ttl: str, role: str) -> ddb.Table:
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
    )
    mark(table, role)
    return table


class StateTables(Construct):
    def __init__(self, scope: Construct, id_: str, *, anomalies: bool) -> None:
        super().__init__(scope, id_)
        self.anomalies: ddb.Table | None = (
            _table(self, "Anomalies", "pk", "sk", "ttl", "anomaly-table") if anomalies else None
        )
        self.idempotency = _table(self, "Idempotency", "id", None, "expiration", "idempotency-table")

    @staticmethod
    def item_actions(read_only: bool = False) -> list[str]:
        reads = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"]
        writes = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
        return reads if read_only else reads + writes
