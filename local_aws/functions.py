"""Lambda functions of the template, run in-process: handler imported from the synthesized asset directory,
the template's environment set for the call, a Lambda-like context object."""

from __future__ import annotations

import contextlib
import filecmp
import importlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local_aws.template import Resource, Template, TemplateError

Handler = Callable[[Any, Any], Any]


@dataclass
class FakeLambdaContext:
    """The attributes of the Python Lambda runtime's context object that handlers and Powertools read."""

    function_name: str
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    memory_limit_in_mb: int = 128
    timeout_seconds: int = 3
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local/[$LATEST]0"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_seconds * 1000  # simulated time does not pass during a call


@contextlib.contextmanager
def environment(variables: Mapping[str, str], remove: Iterable[str] = ()) -> Iterator[None]:
    """Set ``variables`` (and unset ``remove``) in ``os.environ`` for the duration of a call, then restore exactly."""
    removed = tuple(remove)
    saved = {k: os.environ.get(k) for k in (*variables, *removed)}
    os.environ.update({k: str(v) for k, v in variables.items()})
    for k in removed:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _same_source(module: Any, asset_dir: Path, module_name: str) -> bool:
    current = getattr(module, "__file__", None)
    if not current:
        return False
    candidate = asset_dir.joinpath(*module_name.split(".")).with_suffix(".py")
    if not candidate.exists():
        candidate = asset_dir.joinpath(*module_name.split("."), "__init__.py")
    return candidate.exists() and filecmp.cmp(current, candidate, shallow=False)


def load_handler(asset_dir: Path, handler: str, cold: bool = True) -> Handler:
    """Import ``module.function`` from ``asset_dir`` the way the Lambda runtime does (asset on the path).

    ``cold`` (the default) starts the function like a new Lambda container: every already-imported module of the
    handler's package is dropped and imported again, so module-level set-up (Powertools ``Metrics`` and ``Logger``
    service names, cached clients and settings) reads *this* function's environment, not whatever an earlier
    pipeline or test in the same process left behind. With ``cold=False`` an already-imported package is reused
    when every module is byte-identical to the asset's copy; otherwise it is re-imported from the asset.
    """
    module_name, _, func = handler.rpartition(".")
    if not module_name:
        raise TemplateError(f"handler {handler!r} is not module.function")
    top = module_name.split(".")[0]
    asset = str(asset_dir.resolve())
    loaded = {n: m for n, m in sys.modules.items() if n == top or n.startswith(top + ".")}
    stale = not all(_same_source(m, asset_dir, n) for n, m in loaded.items() if getattr(m, "__file__", None))
    if loaded and (cold or stale):
        for n in loaded:
            del sys.modules[n]
    if asset not in sys.path:
        sys.path.insert(0, asset)
    module = importlib.import_module(module_name)
    fn = getattr(module, func, None)
    if not callable(fn):
        raise TemplateError(f"handler {handler!r}: {module_name} has no function {func!r}")
    return fn  # type: ignore[no-any-return]


def asset_path_of(template: Template, r: Resource) -> str | None:
    """The asset directory (relative to the assembly) holding a function's code.

    ``aws:asset:path`` metadata when present (the CDK CLI adds it); otherwise the assets manifest entry whose hash
    is the ``Code.S3Key`` the template deploys (what a plain ``app.synth()`` produces).
    """
    meta = r.metadata.get("aws:asset:path")
    if meta:
        return str(meta)
    key = str(template.resolve((r.properties.get("Code") or {}).get("S3Key", "")))
    digest = key.rsplit("/", 1)[-1].split(".", 1)[0]
    if not digest or template.assembly_dir is None:
        return None
    for manifest in sorted(template.assembly_dir.glob("*.assets.json")):
        files = json.loads(manifest.read_text()).get("files", {})
        source = (files.get(digest) or {}).get("source") or {}
        if source.get("path") and source.get("packaging", "zip") == "zip":
            return str(source["path"])
    fallback = template.assembly_dir / f"asset.{digest}"
    return fallback.name if fallback.is_dir() else None


def is_code_asset_function(template: Template, r: Resource) -> bool:
    return bool(r.properties.get("Handler")) and asset_path_of(template, r) is not None


@dataclass
class LocalFunction:
    """One ``AWS::Lambda::Function`` of the template."""

    resource: Resource
    name: str
    arn: str
    handler: str
    asset_dir: Path
    environment: dict[str, str]
    timeout: int
    memory: int
    package: str  # the handler's top package: transform, detector, automation, backtest_job, ...
    _fn: Handler | None = None

    @classmethod
    def from_resource(cls, template: Template, r: Resource) -> LocalFunction:
        props = template.props(r)
        handler = str(props.get("Handler", ""))
        asset_path = asset_path_of(template, r)
        if not asset_path or template.assembly_dir is None:
            raise TemplateError(f"function {r.logical_id}: no code asset found (inline code is not played)")
        asset_dir = (template.assembly_dir / asset_path).resolve()
        if not asset_dir.is_dir():
            raise TemplateError(
                f"asset directory {asset_dir} of {r.logical_id} is missing (bundled zip assets unsupported)"
            )
        env = {k: str(v) for k, v in (props.get("Environment", {}).get("Variables", {}) or {}).items()}
        return cls(
            resource=r,
            name=r.physical,
            arn=r.arn,
            handler=handler,
            asset_dir=asset_dir,
            environment=env,
            timeout=int(props.get("Timeout", 3)),
            memory=int(props.get("MemorySize", 128)),
            package=handler.split(".")[0],
        )

    def context(self) -> FakeLambdaContext:
        return FakeLambdaContext(
            function_name=self.name,
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory,
            timeout_seconds=self.timeout,
            log_group_name=f"/aws/lambda/{self.name}",
        )

    def invoke(self, event: Any, extra_env: Mapping[str, str] | None = None) -> Any:
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            **self.environment,
            **(extra_env or {}),
        }
        with environment(env):  # imported inside: handlers may read their environment at import time
            if self._fn is None:
                self._fn = load_handler(self.asset_dir, self.handler)
            return self._fn(event, self.context())
