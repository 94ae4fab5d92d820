"""``publish`` end to end against a real Mosquitto broker with mutual TLS on localhost.

The test makes its own CA, a server certificate for localhost/127.0.0.1 and client certificates, starts
``mosquitto`` on a free port with ``require_certificate true``, listens with a second MQTT 5 client (the same
AWS IoT Device SDK client) and runs ``python -m simulator publish`` as a real subprocess. Without a broker the test
fails (``make test`` installs it); it never skips.
"""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sentinel_core.records import decode_and_validate
from sentinel_core.spec import get_preset

from simulator.datagen import generate_dataset, read_records
from simulator.device import Device, DeviceSettings

SPEC = get_preset("air-quality")
ROOT = Path(__file__).resolve().parents[2]
THING = "sensor-1"


# -- certificates ---------------------------------------------------------------------------------------------------
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return path.with_suffix(".crt"), key_path


def make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(ca[1], hashes.SHA256()), key


# -- broker ---------------------------------------------------------------------------------------------------------
def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if not found:
        pytest.fail("mosquitto is not installed: run 'make broker' (installs the OS package; make test does it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A mosquitto process with mutual TLS on a fixed localhost port; ``restart`` keeps port and state."""

    port: int
    ca: Path
    dir: Path
    log: Path
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    def client(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                log = self.log.read_text() if self.log.exists() else ""
                pytest.fail(f"mosquitto exited with {self.proc.returncode}: {out} {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("mosquitto did not open its port within 10 s")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def make_broker(d: Path, ca_path: Path, server: tuple[Path, Path], persist: bool) -> Broker:
    port = free_port()
    log = d / f"mosquitto-{port}.log"
    conf = d / f"mosquitto-{port}.conf"
    # mosquitto 2.x: listeners are closed to anonymous clients unless allowed; with use_identity_as_username the
    # certificate's CN becomes the user name, so an authenticated client is not anonymous. Started as root it would
    # switch to the 'mosquitto' user, which cannot read pytest's private temp dir: 'user' keeps the current user.
    persistence = (
        f"persistence true\npersistence_location {d}/\npersistence_file mosquitto-{port}.db"
        if persist
        else ("persistence false")
    )
    conf.write_text(
        f"""per_listener_settings false
user {getpass.getuser()}
{persistence}
log_dest file {log}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
allow_anonymous false
listener {port} 127.0.0.1
cafile {ca_path}
certfile {server[0]}
keyfile {server[1]}
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
"""
    )
    return Broker(port, ca_path, d, log, conf)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, tuple[Path, Path]]:
    mosquitto_binary()  # fail first, and clearly, when the broker is missing
    d = tmp_path_factory.mktemp("broker")
    ca = make_ca("Sentinel Test CA")
    ca_path, _ = _write(d / "ca", *ca)
    server = _write(d / "server", *issue(ca, "localhost", server=True))
    for name in (THING, "listener"):
        _write(d / name, *issue(ca, name, server=False))
    rogue_ca = make_ca("Somebody Else's CA")
    _write(d / "rogue", *issue(rogue_ca, THING, server=False))
    return d, ca_path, server


@pytest.fixture(scope="module")
def broker(certs: tuple[Path, Path, tuple[Path, Path]]) -> Iterator[Broker]:
    b = make_broker(*certs, persist=False)
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Listener:
    """Second MQTT client: records every telemetry message, can send commands."""

    def __init__(self, broker: Broker, client_id: str) -> None:
        cert, key = broker.client("listener")
        self.events: list[str] = []  # the device's own reports: "connection resumed (...)", "subscription ..."
        self.device = Device(
            DeviceSettings("localhost", broker.port, cert, key, client_id, ca=broker.ca), on_event=self.events.append
        )
        self.messages: list[bytes] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Listener:
        self.device.connect()
        self.device.subscribe(SPEC.telemetry_topic_filter, self._on)
        return self

    def __exit__(self, *exc: object) -> None:
        self.device.disconnect()

    def _on(self, topic: str, payload: bytes) -> None:
        assert topic == SPEC.telemetry_topic(THING)
        with self._lock:
            self.messages.append(payload)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def distinct(self) -> set[tuple[str, str]]:
        with self._lock:
            return {_key_of(m) for m in self.messages}

    def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Poll ``done`` (an observable state, not a duration) until it holds; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def wait_for(self, n: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a duplicate would arrive now


def publish_cmd(broker: Broker, *args: str, cert: str = THING) -> list[str]:
    crt, key = broker.client(cert)
    return [
        sys.executable,
        "-m",
        "simulator",
        "publish",
        "--endpoint",
        "localhost",
        "--port",
        str(broker.port),
        "--cert",
        str(crt),
        "--key",
        str(key),
        "--ca",
        str(broker.ca),
        "--thing",
        THING,
        *args,
    ]


def run_env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "PYTHONPATH": f"{ROOT / 'lambdas'}:{ROOT}"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    generate_dataset(
        d, SPEC, days=0.25, locations=3, seed=7, live_start=dt.datetime(2026, 5, 1, tzinfo=dt.UTC), live_hours=1
    )
    return d


def _key_of(payload: bytes) -> tuple[str, str]:
    obj = json.loads(payload)
    return obj["TIMESTAMP"], obj["LOCATION_ID"]


def test_every_record_arrives_exactly_once_and_commands_are_printed(broker: Broker, dataset: Path) -> None:
    history = dataset / "historical_data.json"
    expected = {(r["TIMESTAMP"], r["LOCATION_ID"]): r for r in read_records(history)}
    with Listener(broker, "listener-a") as listener:
        proc = subprocess.Popen(
            publish_cmd(broker, "--file", str(history), "--rate", "0", "--listen", "3"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=run_env(),
            cwd=ROOT,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if "listening for commands for" in line:
                break
        else:
            pytest.fail("publish ended without listening for commands:\n" + "".join(lines))
        command = {"command": "ventilate", "location": "B-101", "anomaly_group": "g-1"}
        listener.device.publish(SPEC.command_topic(THING), json.dumps(command).encode()).result(timeout=5)
        rest, _ = proc.communicate(timeout=20)
        output = "".join(lines) + rest
        assert proc.returncode == 0, output
        listener.wait_for(len(expected))
    assert "command received" in output and '"ventilate"' in output, output
    got = [_key_of(m) for m in listener.messages]
    assert len(got) == len(set(got)) == len(expected), "every record exactly once"
    assert set(got) == set(expected)
    for payload in listener.messages:
        rec = decode_and_validate(payload, SPEC)
        src = expected[(json.loads(payload)["TIMESTAMP"], rec.dimensions[0])]
        assert rec.values == {m: float(src[m]) for m in SPEC.measure_names}
    assert f"{len(expected):,}" in output  # the summary counts them


def test_ctrl_c_stops_cleanly_and_resume_has_no_gap_or_duplicate(broker: Broker, dataset: Path) -> None:
    history = dataset / "historical_data.json"
    total = sum(1 for _ in read_records(history))
    with Listener(broker, "listener-b") as listener:
        proc = subprocess.Popen(
            publish_cmd(broker, "--file", str(history), "--rate", "60"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=run_env(),
            cwd=ROOT,
        )
        listener.wait_for(20, timeout=15)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130, out
        assert "stopped by Ctrl-C" in out
        skip = int(out.split("--skip ")[1].split(".")[0].replace(",", ""))
        listener.wait_for(skip)
        first = [_key_of(m) for m in listener.messages]
        assert len(first) == len(set(first)) == skip, out  # all confirmed, none twice
        assert skip < total
        again = subprocess.run(
            publish_cmd(broker, "--file", str(history), "--rate", "0", "--skip", str(skip)),
            capture_output=True,
            text=True,
            env=run_env(),
            cwd=ROOT,
            timeout=30,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        listener.wait_for(total)
    got = [_key_of(m) for m in listener.messages]
    assert len(got) == len(set(got)) == total


def test_certificate_from_another_ca_is_rejected_clearly(broker: Broker, dataset: Path) -> None:
    t0 = time.monotonic()
    res = subprocess.run(
        publish_cmd(broker, "--file", str(dataset / "live_data.csv"), "--count", "3", cert="rogue"),
        capture_output=True,
        text=True,
        env=run_env(),
        cwd=ROOT,
        timeout=60,
    )
    elapsed = time.monotonic() - t0
    output = res.stdout + res.stderr
    assert res.returncode == 1, output
    assert "certificate" in output and f"localhost:{broker.port}" in output, output
    assert "Traceback" not in output
    assert elapsed < 25, f"took {elapsed:.0f}s: a rejected certificate must fail fast, not hang"


class Output:
    """Reads a subprocess's combined output on a thread so the test can wait for a line without blocking."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: any(needle in line for line in self._lines), timeout=timeout)

    def close(self) -> str:
        self._thread.join(timeout=10)
        return self.text()


def test_broker_restart_mid_replay_loses_nothing(certs: tuple[Path, Path, tuple[Path, Path]], dataset: Path) -> None:
    """The broker goes away mid-replay: publish reconnects with backoff, rejoins its MQTT 5 session and re-sends
    what was not acknowledged.

    QoS 1 is at-least-once, so a message the broker took just before dying may come twice; none may be missing.
    The broker persists sessions, so the listener's subscription and its queued messages survive the restart.
    Every step waits for an observable event, never for a duration: the replay is under way (30 messages
    arrived); the publisher is frozen (SIGSTOP) so it cannot race ahead while the broker restarts; the listener is
    back with its subscription (kept in its session, or restored by the device); only then is the publisher thawed,
    finds its connection gone, reconnects and finishes.
    """
    b = make_broker(*certs, persist=True)
    b.start()
    history = dataset / "historical_data.json"
    expected = {(r["TIMESTAMP"], r["LOCATION_ID"]) for r in read_records(history)}
    # 20 msg/s: the replay lasts len(expected) / 20 s (~11 s), far longer than the steps below before SIGSTOP.
    proc: subprocess.Popen[str] | None = None
    try:
        with Listener(b, "listener-restart") as listener:
            proc = subprocess.Popen(
                publish_cmd(b, "--file", str(history), "--rate", "20", "--ack-timeout", "5"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=run_env(),
                cwd=ROOT,
            )
            output = Output(proc)
            assert listener.wait_until(lambda: listener.count() >= 30, timeout=120), output.text()
            proc.send_signal(signal.SIGSTOP)
            assert len(listener.distinct()) < len(expected), "the replay finished before the restart: nothing tested"
            b.stop()
            b.start()

            def listener_back() -> bool:
                return any("session kept" in e or e.endswith(" restored") for e in listener.events)

            assert listener.wait_until(listener_back, timeout=120), listener.events
            proc.send_signal(signal.SIGCONT)
            assert output.wait_for("connection lost", timeout=60), output.text()
            assert output.wait_for("connection resumed", timeout=120), output.text()
            assert proc.wait(timeout=180) == 0, output.close()
            out = output.close()
            assert listener.wait_until(lambda: listener.distinct() >= expected, timeout=120), (
                f"missing: {sorted(expected - listener.distinct())[:5]}\n{out}"
            )
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
        b.stop()
    assert "connection lost" in out and "(p5," in b.log.read_text(), "the publisher spoke MQTT 5 to the broker"
    got = [_key_of(m) for m in listener.messages]
    assert set(got) == expected
    assert len(got) - len(expected) <= 100, "duplicates bounded by the in-flight window"
