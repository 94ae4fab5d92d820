"""Local runtime: the synthesized CDK stack played offline on top of moto (see ``pipeline.LocalPipeline``)."""

from simulator.runtime.firehose import Ledger, LocalFirehose
from simulator.runtime.functions import FakeLambdaContext, LocalFunction
from simulator.runtime.pipeline import LocalPipeline
from simulator.runtime.template import Template, TemplateError, load_assembly

__all__ = [
    "FakeLambdaContext",
    "Ledger",
    "LocalFirehose",
    "LocalFunction",
    "LocalPipeline",
    "Template",
    "TemplateError",
    "load_assembly",
]
