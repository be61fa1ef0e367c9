"""The escalation plan is frozen onto an incident when it is reported: changing the configuration
afterwards alters only incidents reported afterwards."""
from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from handlers.context import DISPATCH
from testkit.client import incident_is
from testkit.geo import near
from testkit.nodes import InProcess
from tests.integration.test_cascade import on_duty


def reconfigure(hl: InProcess, **changes: object) -> None:
    """What a configuration change does to a running service: new reports get the new plan."""
    svc = hl.app[DISPATCH]
    svc.dcfg = msgspec.structs.replace(svc.dcfg, **changes)


async def test_an_incident_reported_under_three_offers_keeps_three_when_the_config_drops_to_one(hl):
    r0, r1, r2, r3 = await on_duty(hl, 4)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="p3", category="medical", **near(0)))["incident"]
    reconfigure(hl, max_offers=1, radius_km=0.1)
    for attempt, r in enumerate((r0, r1, r2), start=1):
        offer = await r.push("offer", lambda m: m["incident"]["id"] == inc["id"])
        assert offer["incident"]["offer_attempts"] == attempt
        await r.ok("offer.decline", offer_id=offer["offer_id"])
    await resident.push("incident.updated", incident_is(inc["id"], "escalated"))
    await r3.no_push("offer")
    events = (await resident.ok("incident.events", incident_id=inc["id"]))["events"]
    assert events[0]["kind"] == "reported"
    assert events[0]["data"]["plan"] == {"radius_km": 10, "max_offers": 3, "offer_timeout_s": 2}
    assert events[-1]["kind"] == "escalated" and events[-1]["data"]["reason"] == "max_offers"


@pytest.mark.config(dispatch_max_offers=1)
async def test_an_incident_reported_under_one_offer_keeps_one_when_the_config_rises_to_three(hl):
    r0, r1 = await on_duty(hl, 2)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="p1", category="medical", **near(0)))["incident"]
    reconfigure(hl, max_offers=3)
    offer = await r0.push("offer")
    await r0.ok("offer.decline", offer_id=offer["offer_id"])
    await resident.push("incident.updated", incident_is(inc["id"], "escalated"))
    await r1.no_push("offer")
    # a report made after the change gets the new plan: three offers
    later = (await resident.ok("help.request", request_id="p1b", category="medical", **near(0)))["incident"]
    first = await r0.push("offer", lambda m: m["incident"]["id"] == later["id"])
    await r0.ok("offer.decline", offer_id=first["offer_id"])
    second = await r1.push("offer", lambda m: m["incident"]["id"] == later["id"])
    assert second["incident"]["offer_attempts"] == 2


async def test_later_offers_keep_the_offer_timeout_of_the_report(hl):
    r0, r1 = await on_duty(hl, 2)
    resident = await hl.resident()
    inc = (await resident.ok("help.request", request_id="pt", category="medical", **near(0)))["incident"]
    reconfigure(hl, offer_timeout_s=600)
    first = await r0.push("offer")
    await r0.push("offer.withdrawn", timeout=6)            # expired after the frozen 2 s, not 600
    second = await r1.push("offer", lambda m: m["incident"]["id"] == inc["id"], timeout=5)
    left = (datetime.fromisoformat(second["expires_at"])
            - datetime.now(UTC)).total_seconds()
    assert left < 5 and first["offer_id"] != second["offer_id"]
