"""The offline demo: the synthesized stack played on moto (``local_aws``), fed like its sources would feed it.

``run_demo(options, observer)`` for every preset:

1. synthesize the CDK app into ``<out>/cdk.out`` or reuse that assembly while nothing changed (:mod:`.synth`);
2. inside the demo's session (:mod:`.session`: ``local_aws.offline`` plus the Lambdas' logs to
   ``<out>/lambda-logs.jsonl``) feed the stack as the preset's source would (:mod:`.air_quality`: devices on MQTT;
   :mod:`.ecommerce`: page views to Kinesis; :mod:`.loyalty`: a CSV upload backtested by the job);
3. read back what recipients, devices and S3 got (:mod:`.readback`), match injected vs detected and recompute the
   bands with the detector core (:mod:`.scoring`), and write ``<out>/report.html`` (:mod:`.report`) and
   ``<out>/alerts.jsonl``; the result (:mod:`.result`) is the same for every preset.

Nothing here re-implements the pipeline: every hop is the local runtime playing the synthesized template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sentinel_core.spec import PipelineSpec, get_preset

from simulator.demo.result import (
    DEFAULT_START,
    PRESET_DEFAULTS,
    Counts,
    DemoError,
    DemoOptions,
    DemoResult,
    Observer,
    ReceivedAlert,
    Recipient,
    SilentObserver,
)

if TYPE_CHECKING:
    from local_aws import LocalPipeline

# A preset's run: inside the demo's session, on the started pipeline; returns what it found.
Runner = Callable[[DemoOptions, PipelineSpec, "LocalPipeline", bool, Observer], DemoResult]


def _runner(preset: str) -> Runner:
    if preset == "air-quality":
        from simulator.demo import air_quality

        return air_quality.run
    if preset == "loyalty":
        from simulator.demo import loyalty

        return loyalty.run
    if preset == "ecommerce":
        from simulator.demo import ecommerce

        return ecommerce.run
    raise DemoError(f"no demo for preset {preset!r}; choose one of {', '.join(PRESET_DEFAULTS)}")


def run_demo(options: DemoOptions, observer: Observer | None = None) -> DemoResult:
    """Run the demo of ``options.preset``; the Lambdas' logs go to ``<out>/lambda-logs.jsonl``."""
    from simulator.demo.session import demo_session
    from simulator.demo.synth import load_pipeline

    options.validate()
    obs: Observer = observer or SilentObserver()
    spec = get_preset(options.preset)
    run = _runner(options.preset)
    options.out.mkdir(parents=True, exist_ok=True)
    obs.phase("Synthesizing the CDK app (real synth of infra/)")
    pipeline, synthesized = load_pipeline(spec, options.synth_dir or options.out / "cdk.out", options.shards)
    obs.note(
        ("Synthesized" if synthesized else "Reused the synthesized")
        + f" stack {pipeline.template.stack_name}: {len(pipeline.template.resources)} resources"
    )
    obs.phase("Creating the stack's resources in moto (from the template)")
    with demo_session(pipeline, options.out):  # local_aws.offline + the Lambdas' logs to <out>/lambda-logs.jsonl
        result = run(options, spec, pipeline, synthesized, obs)
        from simulator.console_state import save_demo_state

        save_demo_state(pipeline, options.out)  # what `make console` serves
        return result


__all__ = [
    "DEFAULT_START",
    "PRESET_DEFAULTS",
    "Counts",
    "DemoError",
    "DemoOptions",
    "DemoResult",
    "Observer",
    "ReceivedAlert",
    "Recipient",
    "SilentObserver",
    "run_demo",
]
