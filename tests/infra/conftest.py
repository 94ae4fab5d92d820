"""Every infra test module runs on the 3 presets x 2 engines, and on each preset's sharded builtin detector (the
Step Functions fan-out: an inline Map for few shards, a Distributed Map above ``INLINE_MAP_MAX_SHARDS``), each
synthesized once per session (``synth_cache``)."""

from __future__ import annotations

from typing import Any

import pytest
from sentinel_core.spec import PRESETS

from infra.config import ENGINES
from tests.support.assembly import Synth, SynthCache

# preset -> shards of its sharded variant: few (inline Map) for two presets, many (Distributed Map) for one
SHARDED = {"air-quality": 4, "loyalty": 2, "ecommerce": 64}
COMBOS: list[tuple[str, str, dict[str, Any]]] = [(p, e, {}) for p in PRESETS for e in ENGINES] + [
    (p, "builtin", {"detector_shards": SHARDED[p]}) for p in PRESETS
]


def _id(combo: tuple[str, str, dict[str, Any]]) -> str:
    p, e, extra = combo
    return f"{p}-{e}" + (f"-{extra['detector_shards']}shards" if extra else "")


@pytest.fixture(params=COMBOS, ids=[_id(c) for c in COMBOS])
def synth(request: pytest.FixtureRequest, synth_cache: SynthCache) -> Synth:
    preset, engine, extra = request.param
    return synth_cache(preset, engine, **extra)
