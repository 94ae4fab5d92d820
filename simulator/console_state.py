"""The offline console's state: what the last demo left in moto, saved to ``<out>/console-state.json`` and loaded
back into a fresh moto by ``python -m simulator console``.

Saved: the anomaly table's schema (keys, indexes) and every item of the demo detector's partition (groups, alert
ledger, feedback, run records: a Query on its key, not a Scan), the detector's model state objects (what its next
run loads), the alert topic's name and the detector function's environment (so the console can run the next
interval with the same settings). Binary attributes are base64 text. Nothing else of the demo is needed: the API
reads only the table, and a detector run reads its state and the (empty, for a run after the demo) next folder.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentinel_core import environment as env
from sentinel_core import layout, store
from sentinel_core.spec import PipelineSpec

from simulator.errors import NotFoundError

STATE_FILE = "console-state.json"
FORMAT = 1


class ConsoleStateError(NotFoundError):
    """No usable demo state; the message says what to run."""


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__b64__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@dataclass
class ConsoleState:
    region: str
    detector_env: dict[str, str]  # the detector function's environment in the demo stack
    table: dict[str, Any]  # KeySchema, AttributeDefinitions, GlobalSecondaryIndexes
    items: list[dict[str, Any]]  # DynamoDB attribute values
    objects: dict[str, bytes]  # data bucket key -> body (the detector's state prefix)
    topic_name: str

    @property
    def spec(self) -> PipelineSpec:
        return PipelineSpec.from_json(self.detector_env[env.SENTINEL_SPEC])

    @property
    def table_name(self) -> str:
        return self.detector_env[env.ANOMALY_TABLE]

    @property
    def bucket(self) -> str:
        return self.detector_env[env.DATA_BUCKET]

    @property
    def detector_id(self) -> str:
        return self.detector_env[env.DETECTOR_ID]

    # -- capture (inside the demo's moto) --------------------------------------------------------------------
    @classmethod
    def capture(cls, ddb: Any, s3: Any, detector_env: Mapping[str, str], region: str) -> ConsoleState:
        environ = dict(detector_env)
        table = environ[env.ANOMALY_TABLE]
        desc = ddb.describe_table(TableName=table)["Table"]
        schema = {
            "KeySchema": desc["KeySchema"],
            "AttributeDefinitions": desc["AttributeDefinitions"],
            "GlobalSecondaryIndexes": [
                {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
                for g in desc.get("GlobalSecondaryIndexes", [])
            ],
        }
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": store.pk(environ[env.DETECTOR_ID])}},
        }
        while True:
            resp = ddb.query(**request)
            items.extend(resp.get("Items", []))
            if not resp.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        spec = PipelineSpec.from_json(environ[env.SENTINEL_SPEC])
        bucket = environ[env.DATA_BUCKET]
        objects: dict[str, bytes] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=layout.state_prefix(spec)):
            for obj in page.get("Contents", []):
                objects[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        topic_name = environ[env.ALERT_TOPIC_ARN].rsplit(":", 1)[-1]
        return cls(region, environ, schema, items, objects, topic_name)

    def save(self, path: Path) -> Path:
        doc = {
            "format": FORMAT,
            "region": self.region,
            "detector_env": self.detector_env,
            "table": self.table,
            "items": _encode(self.items),
            "objects": {k: _encode(v) for k, v in self.objects.items()},
            "topic_name": self.topic_name,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        tmp.replace(path)  # a reader never sees half a file
        return path

    @classmethod
    def load(cls, path: Path) -> ConsoleState:
        if not path.exists():
            raise ConsoleStateError(f"{path} does not exist: run `make demo` (or `python -m simulator demo`) first")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConsoleStateError(f"{path} is not a console state file ({exc}): run `make demo` again") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConsoleStateError(f"{path} was written by another version: run `make demo` again")
        return cls(
            region=str(doc["region"]),
            detector_env={str(k): str(v) for k, v in doc["detector_env"].items()},
            table=dict(doc["table"]),
            items=list(_decode(doc["items"])),
            objects={k: _decode(v) for k, v in doc["objects"].items()},
            topic_name=str(doc["topic_name"]),
        )

    # -- restore (inside the console's moto) -------------------------------------------------------------------
    def restore(self, ddb: Any, s3: Any, sns: Any) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeySchema": self.table["KeySchema"],
            "AttributeDefinitions": self.table["AttributeDefinitions"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.table.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = self.table["GlobalSecondaryIndexes"]
        ddb.create_table(**kwargs)
        for i in range(0, len(self.items), 25):
            ddb.batch_write_item(
                RequestItems={self.table_name: [{"PutRequest": {"Item": it}} for it in self.items[i : i + 25]]}
            )
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=self.bucket)
        else:
            s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": self.region})
        for key, body in self.objects.items():
            s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        sns.create_topic(Name=self.topic_name)

    def refresh(self, ddb: Any, s3: Any) -> None:
        """Re-read the table and the state objects (after feedback or a detector run), to save them."""
        fresh = ConsoleState.capture(ddb, s3, self.detector_env, self.region)
        self.items, self.objects = fresh.items, fresh.objects


def save_demo_state(pipeline: Any, out: Path) -> Path:
    """Save what the console needs from a demo's started pipeline (inside its moto) to ``<out>/console-state.json``."""
    # the single detector's settings, or the sharded detector's merge's (the same keys)
    detector_env = pipeline.env_of("detector_merge" if "detector_merge" in pipeline.handler_packages() else "detector")
    return ConsoleState.capture(pipeline.client("dynamodb"), pipeline.client("s3"), detector_env, pipeline.region).save(
        out / STATE_FILE
    )
