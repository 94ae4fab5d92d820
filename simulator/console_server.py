"""The offline console: the deployed console's API handler and web files on localhost, over the last demo's state.

``ConsoleServer`` loads ``<out>/console-state.json`` into a fresh moto (inside the one offline harness: fake
credentials, nothing can reach AWS), then serves with the standard library's HTTP server:

* ``GET /`` and the files of ``web/`` with the headers of ``web/headers.json`` (the CloudFront policy's);
* ``GET /config.json``: ``mode: offline`` (no sign-in; the page says so), the detector's measures and dimensions;
* ``POST /api/<Operation>``: the request becomes an API Gateway HTTP API (v2) event for the real
  ``console_api.app.lambda_handler``, exactly as the deployed route delivers it (minus the JWT);
* ``POST /local/RunDetector`` (offline only): the detector's own run (``detector.runner.run``, its settings from the
  demo stack's environment) on the interval after the last scored one — it applies pending feedback like the
  scheduled run does.

After every write (feedback, a run) the state file is saved again, so a restart keeps them. One request at a time
(``HTTPServer``, not threaded): moto's in-process backends are not made for concurrent writers.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import sys
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sentinel_core import environment as env
from sentinel_core import store

from simulator.commands.console import DEFAULT_PORT
from simulator.console_state import STATE_FILE, ConsoleState

ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = ROOT / "web"
LAMBDAS = ROOT / "lambdas"
MAX_BODY = 1 << 20  # API Gateway's own limit is 10 MB; Lookout requests are a few hundred bytes


def http_api_event(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event for ``POST /api/{operation}`` (what the Lambda gets deployed)."""
    operation = path.rsplit("/", 1)[-1]
    return {
        "version": "2.0",
        "routeKey": "POST /api/{operation}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "accountId": "offline",
            "apiId": "offline",
            "domainName": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": f"offline-{time.time_ns()}",
            "routeKey": "POST /api/{operation}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "pathParameters": {"operation": operation},
        "body": body.decode("utf-8", "replace"),
        "isBase64Encoded": False,
    }


class _Context:
    """The Lambda context attributes Powertools reads."""

    function_name = "console_api-offline"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:offline:000000000000:function:console_api-offline"
    aws_request_id = "offline"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


class ConsoleServer:
    def __init__(self, out: Path, port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> None:
        self.state_path = out / STATE_FILE
        self.state = ConsoleState.load(self.state_path)
        self.host, self.port = host, port
        self.headers = {k: v for k, v in json.loads((WEB_DIR / "headers.json").read_text()).items() if k[0] != "_"}
        self.headers.pop("Strict-Transport-Security", None)  # plain http on localhost: HSTS would not apply
        self._stack = contextlib.ExitStack()
        self.clients: dict[str, Any] = {}

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def __enter__(self) -> ConsoleServer:
        from moto import mock_aws

        from local_aws.functions import environment
        from local_aws.offline import offline_environment

        if str(LAMBDAS) not in sys.path:
            sys.path.insert(0, str(LAMBDAS))  # the Lambda asset's layout: handler packages at the top level
        stack = self._stack
        stack.enter_context(offline_environment(self.state.region))
        stack.enter_context(mock_aws())
        api_env = {
            env.SENTINEL_SPEC: self.state.detector_env[env.SENTINEL_SPEC],
            env.ANOMALY_TABLE: self.state.table_name,
            env.DETECTOR_ID: self.state.detector_id,
            env.POWERTOOLS_SERVICE_NAME: "console_api",
        }
        stack.enter_context(environment(api_env))
        import boto3

        self.clients = {s: boto3.client(s, region_name=self.state.region) for s in ("dynamodb", "s3", "sns")}
        self.state.restore(self.clients["dynamodb"], self.clients["s3"], self.clients["sns"])
        from console_api import app as console_app

        console_app.api_context.cache_clear()  # this process's moto, this table
        self.console_app = console_app
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def url(self) -> str:
        return f"http://{'localhost' if self.host in ('127.0.0.1', 'localhost') else self.host}:{self.port}/"

    def serve(self, ready: Any = None) -> None:
        server = HTTPServer((self.host, self.port), self._handler_class())
        self.port = server.server_address[1]
        if ready is not None:
            ready(self)
        try:
            server.serve_forever()
        finally:
            server.server_close()

    # -- requests -----------------------------------------------------------------------------------------------
    def api(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        event = http_api_event("POST", path, body, headers)
        resp = self.console_app.lambda_handler(event, _Context())
        out_headers = {k: str(v) for k, v in (resp.get("headers") or {}).items()}
        status = int(resp["statusCode"])
        if status == 200 and path.endswith("/PutFeedback"):
            self.save()
        return status, out_headers, str(resp.get("body") or "").encode()

    def run_detector(self) -> dict[str, Any]:
        """The detector's run on the interval after the last one it scored (applies pending feedback first)."""
        from detector import runner
        from sentinel_core.detector import Detector
        from sentinel_core.intervals import interval_seconds

        settings = runner.Settings.from_env(self.state.detector_env)
        clients = runner.Clients(s3=self.clients["s3"], ddb=self.clients["dynamodb"], sns=self.clients["sns"])
        saved = store.load_state(clients.s3, settings.bucket, settings.spec)
        last = Detector.from_state(saved["detector"]).last_interval if saved else None
        if last is None:
            raise store.StoreError("the demo's detector never scored an interval: run `make demo` again")
        closed = last + timedelta(seconds=interval_seconds(settings.spec.interval))
        report: dict[str, Any] = runner.run(clients, settings, closed).to_dict()
        self.save()
        return report

    def config(self) -> dict[str, Any]:
        spec = self.state.spec
        return {
            "mode": "offline",
            "detectorId": self.state.detector_id,
            "measures": list(spec.measure_names),
            "dimensions": list(spec.dimensions),
            "source": str(self.state_path.parent),
        }

    def save(self) -> None:
        self.state.refresh(self.clients["dynamodb"], self.clients["s3"])
        self.state.save(self.state_path)

    def static(self, path: str) -> tuple[int, dict[str, str], bytes]:
        rel = "index.html" if path in ("", "/") else path.lstrip("/")
        target = (WEB_DIR / rel).resolve()
        if WEB_DIR.resolve() not in target.parents or not target.is_file() or target.name == "headers.json":
            return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"not found\n"
        kind = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}.get(target.suffix)
        kind = kind or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        return 200, {"Content-Type": kind, "Cache-Control": "no-cache"}, target.read_bytes()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "SentinelConsoleOffline"

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in {**server.headers, **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, doc: Any) -> None:
                self._send(status, {"Content-Type": "application/json"}, json.dumps(doc).encode())

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/config.json":
                    self._json(200, server.config())
                else:
                    self._send(*server.static(path))

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._json(413, {"__type": "ValidationException", "Message": "request body too large"})
                    return
                body = self.rfile.read(length) if length else b""
                try:
                    if path.startswith("/api/") and path.count("/") == 2:
                        self._send(*server.api(path, body, dict(self.headers.items())))
                    elif path == "/local/RunDetector":
                        self._json(200, server.run_detector())
                    else:
                        self._json(404, {"__type": "UnknownOperationException", "Message": f"no route {path}"})
                except store.StoreError as exc:
                    self._json(409, {"__type": "ConflictException", "Message": str(exc)})

            def log_message(self, format: str, *args: Any) -> None:
                sys.stderr.write(f"console {self.address_string()} {format % args}\n")

        return Handler
