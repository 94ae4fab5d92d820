"""One simulated device: an MQTT 3.1.1 connection over mutual TLS with the AWS IoT Device SDK v2 (awscrt).

``Device`` hides the SDK's callbacks behind three calls — ``connect``, ``publish`` (returns a future that
completes on the broker's PUBACK, QoS 1) and ``disconnect`` — and turns the SDK's error codes into sentences
a field engineer can act on. The SDK reconnects by itself with exponential backoff; publishes made while
offline wait in its queue and go out on reconnect, and the command subscription is restored when the
broker did not keep the session.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awscrt import mqtt
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt_connection_builder

# SDK error names -> what to check. Anything unlisted is reported with the SDK's own name and message.
_HINTS: dict[str, str] = {
    "AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE": (
        "the TLS handshake failed: the broker rejected the client certificate (not signed by a CA it trusts, "
        "revoked or inactive), or the broker's certificate is not trusted by --ca"
    ),
    "AWS_ERROR_MQTT_UNEXPECTED_HANGUP": (
        "the broker closed the connection while connecting: usually the client certificate was rejected "
        "(wrong CA, inactive certificate, or a policy that does not allow this client id)"
    ),
    "AWS_IO_SOCKET_CONNECTION_REFUSED": "nothing accepts connections at that address: check --endpoint and --port",
    "AWS_IO_SOCKET_TIMEOUT": "the broker did not answer in time: check --endpoint, --port and the network",
    "AWS_IO_DNS_INVALID_NAME": "the endpoint name does not resolve: check --endpoint",
    "AWS_IO_DNS_QUERY_FAILED": "the endpoint name does not resolve: check --endpoint",
    "AWS_IO_SOCKET_NO_ROUTE_TO_HOST": "no route to the broker: check the network",
    "AWS_IO_TLS_ERROR_DEFAULT_TRUST_STORE_NOT_FOUND": "no CA trust store found: pass --ca",
    "AWS_IO_FILE_VALIDATION_FAILURE": "a certificate, key or CA file is not valid PEM",
}


class DeviceError(RuntimeError):
    """A connection problem explained for people."""


def explain(exc: BaseException, where: str, connecting: bool = True) -> str:
    if isinstance(exc, AwsCrtError) and not connecting:  # an established connection dropped: hints would mislead
        return f"{where}: {exc.message} ({exc.name})"
    if isinstance(exc, AwsCrtError):
        hint = _HINTS.get(exc.name)
        if hint is None and exc.name.startswith("AWS_IO_TLS"):
            hint = _HINTS["AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE"]
        return f"{where}: {hint or exc.message} ({exc.name})"
    if isinstance(exc, mqtt.SubscribeError):
        return f"{where}: the broker refused the subscription (the device policy may not allow it)"
    text = str(exc)
    if "NOT_AUTHORIZED" in text or "BAD_USERNAME_OR_PASSWORD" in text:
        return f"{where}: the broker refused the connection ({text}): the certificate is not allowed to connect"
    return f"{where}: {type(exc).__name__}: {text}"


@dataclass(frozen=True)
class DeviceSettings:
    endpoint: str
    port: int
    cert: Path
    key: Path
    client_id: str
    ca: Path | None = None  # None: the system trust store (fine for AWS IoT's ATS endpoint)
    keep_alive_secs: int = 30
    connect_timeout_secs: float = 15.0
    ack_timeout_secs: float = 20.0  # a QoS 1 publish not acknowledged in time fails and is retried by the caller
    reconnect_min_secs: int = 1
    reconnect_max_secs: int = 32

    def check_files(self) -> None:
        for label, path in (("--cert", self.cert), ("--key", self.key), ("--ca", self.ca)):
            if path is not None and not path.is_file():
                raise DeviceError(f"{label} {path} does not exist (run 'provision' or pass the right path)")


CommandHandler = Callable[[str, bytes], None]
EventHandler = Callable[[str], None]


class Device:
    def __init__(self, settings: DeviceSettings, on_event: EventHandler | None = None) -> None:
        settings.check_files()
        self.settings = settings
        self._on_event = on_event or (lambda _msg: None)
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.interruptions = 0
        self._conn: Any = mqtt_connection_builder.mtls_from_path(
            endpoint=settings.endpoint,
            port=settings.port,
            cert_filepath=str(settings.cert),
            pri_key_filepath=str(settings.key),
            ca_filepath=str(settings.ca) if settings.ca else None,
            client_id=settings.client_id,
            clean_session=False,
            keep_alive_secs=settings.keep_alive_secs,
            ping_timeout_ms=min(10_000, settings.keep_alive_secs * 500),
            protocol_operation_timeout_ms=int(settings.ack_timeout_secs * 1000),
            reconnect_min_timeout_secs=settings.reconnect_min_secs,
            reconnect_max_timeout_secs=settings.reconnect_max_secs,
            tcp_connect_timeout_ms=int(settings.connect_timeout_secs * 1000),
            on_connection_interrupted=self._interrupted,
            on_connection_resumed=self._resumed,
            enable_metrics_collection=False,
        )

    # -- callbacks (SDK threads) -------------------------------------------------------------------------------
    def _interrupted(self, connection: Any, error: BaseException, **_: Any) -> None:
        self.connected.clear()
        with self._lock:
            self.interruptions += 1
        self._on_event(explain(error, "connection lost, reconnecting with backoff", connecting=False))

    def _resumed(self, connection: Any, return_code: Any, session_present: bool, **_: Any) -> None:
        self.connected.set()
        self._on_event(f"connection resumed (session {'kept' if session_present else 'new'})")
        if not session_present:
            connection.resubscribe_existing_topics()

    # -- API ----------------------------------------------------------------------------------------------------
    def connect(self) -> None:
        s = self.settings
        try:
            self._conn.connect().result(timeout=s.connect_timeout_secs + 5)
        except concurrent.futures.TimeoutError:
            self._conn.disconnect()
            raise DeviceError(
                f"connecting to {s.endpoint}:{s.port}: no answer within {s.connect_timeout_secs + 5:.0f}s "
                "(check --endpoint/--port; the broker may be silently dropping the TLS handshake)"
            ) from None
        except Exception as exc:
            raise DeviceError(explain(exc, f"connecting to {s.endpoint}:{s.port} as {s.client_id!r}")) from None
        self.connected.set()

    def subscribe(self, topic: str, handler: CommandHandler, timeout: float = 10.0) -> None:
        def on_message(topic: str, payload: bytes, **_: Any) -> None:
            handler(topic, payload)

        future, _ = self._conn.subscribe(topic=topic, qos=mqtt.QoS.AT_LEAST_ONCE, callback=on_message)
        try:
            result = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise DeviceError(f"subscribing to {topic}: no SUBACK within {timeout:.0f}s") from None
        except Exception as exc:
            raise DeviceError(explain(exc, f"subscribing to {topic}")) from None
        if result.get("qos") is None:
            raise DeviceError(f"subscribing to {topic}: the broker refused the subscription (check the policy)")

    def publish(self, topic: str, payload: bytes) -> concurrent.futures.Future[Any]:
        """QoS 1 publish; the future completes on PUBACK or fails (timeout, connection closed)."""
        future, _ = self._conn.publish(topic=topic, payload=payload, qos=mqtt.QoS.AT_LEAST_ONCE)
        return future  # type: ignore[no-any-return]

    def disconnect(self, timeout: float = 10.0) -> None:
        try:
            self._conn.disconnect().result(timeout=timeout)
        except Exception as exc:  # already gone: nothing to release
            self._on_event(f"disconnect: {exc}")
        self.connected.clear()
