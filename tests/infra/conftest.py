"""Every infra test module runs on the 3 presets x 2 engines, each synthesized once per session (``synth_cache``)."""

from __future__ import annotations

import pytest
from sentinel_core.spec import PRESETS

from infra.config import ENGINES
from tests.support.assembly import Synth, SynthCache

COMBOS = [(p, e) for p in PRESETS for e in ENGINES]


@pytest.fixture(params=COMBOS, ids=[f"{p}-{e}" for p, e in COMBOS])
def synth(request: pytest.FixtureRequest, synth_cache: SynthCache) -> Synth:
    preset, engine = request.param
    return synth_cache(preset, engine)
