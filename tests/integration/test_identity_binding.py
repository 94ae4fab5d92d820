"""Issue 13.1 on the synthesized air-quality stack played offline: thirty forged "normal" readings for B-101 from a
stolen sensor-7 certificate used to hide B-101's real 9.4 ppm CO spike. Now the rule carries the thing name, the
transform refuses the forgeries (``identity_mismatch``, error prefix), the spike is alerted, and the command goes to
B-101's own topic."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from transform.logic import explain_error_document

from local_aws import published_iot
from tests.integration.test_failure_paths import Harness, _warm_then_spike, h, reading  # noqa: F401 (fixture)


def test_forged_readings_cannot_hide_a_real_alert(h: Harness) -> None:  # noqa: F811
    spike = _warm_then_spike(h)  # B-101 reports 9.4 ppm CO in this interval
    rng = random.Random(13)
    forger = h.spec.telemetry_topic("sensor-7")
    for i in range(30):
        at = spike + timedelta(seconds=5 + i * 9)
        forged = reading("B-101", at, rng, co=2.6)
        assert h.pipe.publish(forger, forged, now=at, client_id="sensor-7") == 1
    report = h.run_detector_after(spike)
    assert isinstance(report, dict) and report["alerts_sent"] >= 1
    co_alerts = [a for a in h.alerts() if a["impactedMetric"]["metricName"] == "CO"]
    assert co_alerts, "the real spike is alerted"
    where = {
        d["dimensionValue"]
        for a in co_alerts
        for s in a["impactedMetric"]["relevantTimeSeries"]
        for d in s["dimensions"]
    }
    assert "B-101" in where
    # Every forgery is in the error prefix with its reason; none reached the interval folder.
    forgeries = [d for d in h.error_docs() if explain_error_document(d, h.spec)[0] == "identity_mismatch"]
    assert len(forgeries) == 30
    assert all(json.loads(h.raw(d))["CO"] == 2.6 for d in forgeries)
    assert len([r for r in h.live_lines(spike) if r["LOCATION_ID"] == "B-101"]) == 5  # B-101's own five readings
    # The automation (subscribed to the alert topic) commands B-101 on its own topic only.
    h.pipe.pump_sns()
    topics = {t for t, _ in published_iot()}
    assert h.spec.command_topic("B-101") in topics and h.spec.command_topic("sensor-7") not in topics
