"""One simulated device: an MQTT 5 connection over mutual TLS with the AWS IoT Device SDK v2 MQTT5 client (awscrt).

``Device`` hides the SDK's callbacks behind four calls — ``connect``, ``subscribe``, ``publish`` (returns a future
that completes on the broker's PUBACK, QoS 1, and fails on a PUBACK reason code that is an error) and ``disconnect``
— and turns the SDK's error codes into sentences a field engineer can act on. The client reconnects by itself with
exponential backoff and rejoins its session (``REJOIN_POST_SUCCESS`` with a session expiry): unacknowledged QoS 1
publishes are re-sent first, publishes made while offline wait in its queue, and when the broker did not keep the
session the subscriptions are made again.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awscrt import io, mqtt5
from awscrt.exceptions import AwsCrtError
from awsiot import mqtt5_client_builder

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
    "AWS_IO_SOCKET_CLOSED": (
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

# CONNACK reason codes (MQTT 5) that mean "this certificate or client id may not connect".
_REFUSED = {
    mqtt5.ConnectReasonCode.NOT_AUTHORIZED,
    mqtt5.ConnectReasonCode.BAD_USERNAME_OR_PASSWORD,
    mqtt5.ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
    mqtt5.ConnectReasonCode.BANNED,
}

# MQTT 5 reason codes from 0x80 on are failures; below are successes (e.g. PUBACK "no matching subscribers").
_FIRST_ERROR_REASON = 0x80


class DeviceError(RuntimeError):
    """A connection problem explained for people."""


class PublishRejectedError(RuntimeError):
    """The broker answered a QoS 1 publish with an error reason code in its PUBACK (e.g. NOT_AUTHORIZED)."""


def explain(
    exc: BaseException | None, where: str, connecting: bool = True, connack: mqtt5.ConnackPacket | None = None
) -> str:
    if connack is not None and connack.reason_code in _REFUSED:
        reason = connack.reason_code.name + (f": {connack.reason_string}" if connack.reason_string else "")
        return f"{where}: the broker refused the connection ({reason}): the certificate is not allowed to connect"
    if exc is None:
        return f"{where}: the connection failed without an error code"
    if isinstance(exc, AwsCrtError) and not connecting:  # an established connection dropped: hints would mislead
        return f"{where}: {exc.message} ({exc.name})"
    if isinstance(exc, AwsCrtError):
        hint = _HINTS.get(exc.name)
        if hint is None and exc.name.startswith("AWS_IO_TLS"):
            hint = _HINTS["AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE"]
        return f"{where}: {hint or exc.message} ({exc.name})"
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
    keep_alive_secs: int = 30  # PINGREQ after 30 s of silence: a dead link is noticed within ~40 s
    connect_timeout_secs: float = 15.0  # TCP connect and CONNACK each; AWS IoT answers in well under a second
    ack_timeout_secs: float = 20.0  # a QoS 1 publish not acknowledged in time fails and is retried by the caller
    reconnect_min_secs: int = 1
    reconnect_max_secs: int = 32  # backoff cap: a device back after an outage waits at most half a minute
    # The broker keeps the session (subscriptions, queued QoS 1 messages both ways) this long after a drop, so a
    # reconnect within the hour resumes it. AWS IoT Core caps it at its own maximum (1 h by default, adjustable).
    session_expiry_secs: int = 3600

    def check_files(self) -> None:
        for label, path in (("--cert", self.cert), ("--key", self.key), ("--ca", self.ca)):
            if path is not None and not path.is_file():
                raise DeviceError(f"{label} {path} does not exist (run 'provision' or pass the right path)")


CommandHandler = Callable[[str, bytes], None]
EventHandler = Callable[[str], None]


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching: ``+`` is one level, a trailing ``#`` any number of levels (zero included)."""
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return i == len(f_levels) - 1
        if i >= len(t_levels) or (level != "+" and level != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


class Device:
    def __init__(self, settings: DeviceSettings, on_event: EventHandler | None = None) -> None:
        settings.check_files()
        self.settings = settings
        self._on_event = on_event or (lambda _msg: None)
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.interruptions = 0
        self._handlers: dict[str, CommandHandler] = {}
        self._first_attempt = threading.Event()  # set by the first connection success or failure
        self._first_failure: tuple[BaseException | None, mqtt5.ConnackPacket | None] | None = None
        self._ever_connected = False
        self._stopping = False
        self._stopped = threading.Event()
        self._last_reconnect_error = ""
        socket_options = io.SocketOptions()
        socket_options.connect_timeout_ms = int(settings.connect_timeout_secs * 1000)
        self._client: mqtt5.Client = mqtt5_client_builder.mtls_from_path(
            endpoint=settings.endpoint,
            port=settings.port,
            cert_filepath=str(settings.cert),
            pri_key_filepath=str(settings.key),
            ca_filepath=str(settings.ca) if settings.ca else None,
            client_id=settings.client_id,
            socket_options=socket_options,
            # The first connection starts clean (no stale queue from an earlier run); reconnects rejoin it.
            session_behavior=mqtt5.ClientSessionBehaviorType.REJOIN_POST_SUCCESS,
            session_expiry_interval_sec=settings.session_expiry_secs,
            # QoS 1 publishes survive a disconnect (un-acked ones are re-sent first); subscribes and QoS 0 do not.
            offline_queue_behavior=mqtt5.ClientOperationQueueBehaviorType.FAIL_NON_QOS1_PUBLISH_ON_DISCONNECT,
            keep_alive_interval_sec=settings.keep_alive_secs,
            ping_timeout_ms=min(10_000, settings.keep_alive_secs * 500),
            connack_timeout_ms=int(settings.connect_timeout_secs * 1000),
            ack_timeout_sec=math.ceil(settings.ack_timeout_secs),
            min_reconnect_delay_ms=settings.reconnect_min_secs * 1000,
            max_reconnect_delay_ms=settings.reconnect_max_secs * 1000,
            retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,  # a fleet back from an outage spreads out
            on_publish_received=self._received,
            on_lifecycle_connection_success=self._connection_success,
            on_lifecycle_connection_failure=self._connection_failure,
            on_lifecycle_disconnection=self._disconnection,
            on_lifecycle_stopped=self._stopped_callback,
            enable_metrics_collection=False,
        )

    # -- callbacks (SDK threads: never block in them) ----------------------------------------------------------
    def _connection_success(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        session_present = bool(data.connack_packet and data.connack_packet.session_present)
        self.connected.set()
        if not self._ever_connected:
            self._ever_connected = True
            self._first_attempt.set()
            return
        self._last_reconnect_error = ""
        self._on_event(f"connection resumed (session {'kept' if session_present else 'new'})")
        if not session_present:  # the broker forgot our subscriptions: make them again
            for topic_filter in list(self._handlers):
                future = self._client.subscribe(self._subscribe_packet(topic_filter))
                future.add_done_callback(lambda f, t=topic_filter: self._resubscribed(t, f))

    def _resubscribed(self, topic_filter: str, future: concurrent.futures.Future[Any]) -> None:
        try:
            self._check_suback(topic_filter, future.result())
        except Exception as exc:
            self._on_event(f"re-subscribing to {topic_filter} failed: {exc}")
        else:
            self._on_event(f"subscription to {topic_filter} restored")

    def _connection_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        if not self._ever_connected:
            self._first_failure = (data.exception, data.connack_packet)
            self._first_attempt.set()
            return
        message = explain(data.exception, "reconnect failed, retrying with backoff", connack=data.connack_packet)
        if message != self._last_reconnect_error:  # say it once, not at every backoff step
            self._last_reconnect_error = message
            self._on_event(message)

    def _disconnection(self, data: mqtt5.LifecycleDisconnectData) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if self._stopping or not was_connected:
            return
        with self._lock:
            self.interruptions += 1
        self._on_event(explain(data.exception, "connection lost, reconnecting with backoff", connecting=False))

    def _stopped_callback(self, data: mqtt5.LifecycleStoppedData) -> None:
        self._stopped.set()

    def _received(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        payload = packet.payload if isinstance(packet.payload, bytes) else bytes(packet.payload or b"")
        for topic_filter, handler in list(self._handlers.items()):
            if topic_matches(topic_filter, packet.topic):
                handler(packet.topic, payload)
                return

    # -- helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def _subscribe_packet(topic_filter: str) -> mqtt5.SubscribePacket:
        return mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter, qos=mqtt5.QoS.AT_LEAST_ONCE)])

    @staticmethod
    def _check_suback(topic_filter: str, suback: mqtt5.SubackPacket) -> None:
        codes = list(suback.reason_codes or [])
        if not codes or any(int(code) >= _FIRST_ERROR_REASON for code in codes):
            names = ", ".join(getattr(code, "name", str(code)) for code in codes) or "no reason code"
            raise DeviceError(
                f"subscribing to {topic_filter}: the broker refused the subscription ({names}; "
                "the device policy may not allow it)"
            )

    # -- API ----------------------------------------------------------------------------------------------------
    def connect(self) -> None:
        s = self.settings
        wait = s.connect_timeout_secs * 2 + 5  # TCP connect, then TLS + CONNACK, each bounded by the timeout
        self._client.start()
        if not self._first_attempt.wait(timeout=wait):
            self._stop()
            raise DeviceError(
                f"connecting to {s.endpoint}:{s.port}: no answer within {wait:.0f}s "
                "(check --endpoint/--port; the broker may be silently dropping the TLS handshake)"
            )
        if self._first_failure is not None:
            self._stop()
            exc, connack = self._first_failure
            raise DeviceError(explain(exc, f"connecting to {s.endpoint}:{s.port} as {s.client_id!r}", connack=connack))

    def subscribe(self, topic: str, handler: CommandHandler, timeout: float = 10.0) -> None:
        self._handlers[topic] = handler
        future = self._client.subscribe(self._subscribe_packet(topic))
        try:
            suback = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            del self._handlers[topic]
            raise DeviceError(f"subscribing to {topic}: no SUBACK within {timeout:.0f}s") from None
        except Exception as exc:
            del self._handlers[topic]
            raise DeviceError(explain(exc, f"subscribing to {topic}")) from None
        try:
            self._check_suback(topic, suback)
        except DeviceError:
            del self._handlers[topic]
            raise

    def publish(self, topic: str, payload: bytes) -> concurrent.futures.Future[Any]:
        """QoS 1 publish; the future completes on a successful PUBACK, or fails (PUBACK error reason code, ack
        timeout, client stopped)."""
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()
        sent = self._client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE))

        def done(f: concurrent.futures.Future[Any]) -> None:
            exc = f.exception()
            if exc is not None:
                outcome.set_exception(exc)
                return
            completion: mqtt5.PublishCompletionData = f.result()
            code = completion.puback.reason_code if completion.puback else None
            if code is not None and int(code) >= _FIRST_ERROR_REASON:
                reason = getattr(code, "name", str(code))
                detail = completion.puback.reason_string if completion.puback else None
                outcome.set_exception(PublishRejectedError(f"PUBACK {reason}" + (f": {detail}" if detail else "")))
            else:
                outcome.set_result(completion)

        sent.add_done_callback(done)
        return outcome

    def _stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        # Session expiry 0 on a clean stop: the broker drops the session now instead of keeping it for an hour.
        self._client.stop(mqtt5.DisconnectPacket(session_expiry_interval_sec=0) if self.connected.is_set() else None)
        self._stopped.wait(timeout=timeout)
        self.connected.clear()

    def disconnect(self, timeout: float = 10.0) -> None:
        try:
            self._stop(timeout)
        except Exception as exc:  # already gone: nothing to release
            self._on_event(f"disconnect: {exc}")
