"""Metric Sentinel core: the code every Lambda, the CDK app and the simulator share.

It lives inside ``lambdas/`` so that every Lambda asset ships it; the CDK app, the simulator and the tests import
the same files (``pip install -e .`` maps the package). Pure Python, standard library only, so a Lambda needs no
bundling step.
"""

from sentinel_core.spec import PRESETS, Measure, PipelineSpec, get_preset

__all__ = ["PRESETS", "Measure", "PipelineSpec", "get_preset"]
