"""OASIS CAP 1.2 documents of alerts and the Atom feed that lists the public ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bali_common.db import as_utc
from bali_common.events.alerts import AlertStatus, Sensitivity, SituationType
from lxml import etree

from bali_consultation.alerts.models import Alert

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"

SITUATION_LABELS: dict[SituationType, str] = {
    SituationType.maritime_distress: "Maritime distress: boats adrift",
    SituationType.disaster_displacement: "Mass displacement after a disaster",
    SituationType.online_scam_trafficking: "Trafficking into online scam operations",
    SituationType.mass_irregular_movement: "Mass irregular movement",
    SituationType.other: "Irregular migration emergency",
}

#: CAP 1.2 section 3.2.2 `category` per situation.
SITUATION_CATEGORIES: dict[SituationType, tuple[str, ...]] = {
    SituationType.maritime_distress: ("Rescue", "Safety"),
    SituationType.disaster_displacement: ("Safety", "Rescue"),
    SituationType.online_scam_trafficking: ("Security",),
    SituationType.mass_irregular_movement: ("Safety", "Security"),
    SituationType.other: ("Other",),
}


def cap_datetime(value: datetime) -> str:
    """CAP 1.2 section 3.3.2: whole seconds, a numeric offset, never "Z"; UTC is "-00:00"."""
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def atom_datetime(value: datetime) -> str:
    """RFC 3339 as Atom (RFC 4287 section 3.3) wants it."""
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cap_identifier(alert_id: str, version: int) -> str:
    """Unique per alert version; no spaces, commas, '<' or '&' (CAP 1.2 section 3.2.1)."""
    return f"urn:bali-process:alert:{alert_id}:v{version}"


def _cap_address(member_id: str) -> str:
    # CAP 1.2 section 3.2.1 `addresses`: space-delimited, quoted if an address has a space.
    return f'"{member_id}"' if " " in member_id else member_id


def _msg_type(alert: Alert) -> str:
    if alert.status == AlertStatus.withdrawn:
        return "Cancel"
    return "Alert" if alert.version == 1 else "Update"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CAP_NAMESPACE}}}{name}")
    if text is not None:
        element.text = text
    return element


def _parameter(info: etree._Element, name: str, value: str, *, tag: str = "parameter") -> None:
    parameter = _sub(info, tag)
    _sub(parameter, "valueName", name)
    _sub(parameter, "value", value)


@dataclass(frozen=True)
class CapContext:
    """What the document needs beyond the alert row."""

    sender: str
    status: str
    addresses: Sequence[str]
    sender_name: str
    web: str | None = None


def cap_document(alert: Alert, context: CapContext) -> bytes:
    """The alert's current version as a CAP 1.2 `alert`, elements in the schema's order."""
    situation = SituationType(alert.situation_type)
    root = etree.Element(f"{{{CAP_NAMESPACE}}}alert", nsmap={None: CAP_NAMESPACE})
    _sub(root, "identifier", cap_identifier(alert.id, alert.version))
    _sub(root, "sender", context.sender)
    _sub(root, "sent", cap_datetime(alert.updated_at))
    _sub(root, "status", context.status)
    _sub(root, "msgType", _msg_type(alert))
    _sub(root, "source", "Bali Process Consultation Mechanism")
    if alert.sensitivity == Sensitivity.public:
        _sub(root, "scope", "Public")
    else:
        # CAP 1.2 section 3.2.1: `addresses` is required when scope is Private.
        _sub(root, "scope", "Private")
        _sub(root, "addresses", " ".join(_cap_address(a) for a in context.addresses))
    _sub(root, "code", "BaliProcess:ConsultationMechanism")
    note = _note(alert)
    if note:
        _sub(root, "note", note)
    if alert.version > 1:
        # CAP 1.2 section 3.2.1 `references`: "sender,identifier,sent" of the first message.
        first = cap_identifier(alert.id, 1)
        _sub(root, "references", f"{context.sender},{first},{cap_datetime(alert.raised_at)}")
    _sub(root, "incidents", alert.id)
    _info(root, alert, situation, context)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _note(alert: Alert) -> str | None:
    if alert.status == AlertStatus.withdrawn:
        return f"Withdrawn: {alert.withdrawal_reason}" if alert.withdrawal_reason else "Withdrawn"
    if alert.status == AlertStatus.resolved and alert.resolution_summary:
        return f"Resolved: {alert.resolution_summary}"
    return None


def _info(
    root: etree._Element, alert: Alert, situation: SituationType, context: CapContext
) -> None:
    info = _sub(root, "info")
    _sub(info, "language", "en")
    for category in SITUATION_CATEGORIES[situation]:
        _sub(info, "category", category)
    _sub(info, "event", SITUATION_LABELS[situation])
    if alert.status == AlertStatus.resolved:
        _sub(info, "responseType", "AllClear")
    _sub(info, "urgency", alert.urgency)
    _sub(info, "severity", alert.severity)
    _sub(info, "certainty", alert.certainty)
    if alert.sensitivity != Sensitivity.public:
        _sub(info, "audience", "Bali Process co-chairs, the raising member and affected members")
    _parameter(info, "BaliProcessSituationType", situation.value, tag="eventCode")
    _sub(info, "effective", cap_datetime(alert.raised_at))
    _sub(info, "senderName", context.sender_name)
    _sub(info, "headline", alert.title)
    _sub(info, "description", alert.description)
    if alert.requested_actions:
        _sub(info, "instruction", "\n".join(alert.requested_actions))
    if context.web:
        _sub(info, "web", context.web)
    _parameter(info, "BaliProcessStatus", alert.status)
    _parameter(info, "BaliProcessEscalationLevel", str(alert.escalation_level))
    people = alert.people_affected or {}
    for key, name in (
        ("estimate", "PeopleAffected"),
        ("women", "WomenAffected"),
        ("children", "ChildrenAffected"),
    ):
        if people.get(key) is not None:
            _parameter(info, name, str(people[key]))
    if alert.affected_members:
        _parameter(info, "AffectedMembers", " ".join(alert.affected_members))
    _area(info, alert)


def _area(info: etree._Element, alert: Alert) -> None:
    location = alert.location
    area = _sub(info, "area")
    _sub(area, "areaDesc", "; ".join(location.get("place_names") or ["Unspecified"]))
    polygon = location.get("polygon")
    if polygon:
        # CAP 1.2 section 3.2.4: space-delimited "lat,lon" pairs, the first repeated last.
        pairs = " ".join(f"{_decimal(p['lat'])},{_decimal(p['lon'])}" for p in polygon)
        _sub(area, "polygon", pairs)
    point = location.get("point")
    if point:
        # CAP 1.2 section 3.2.4: "lat,lon radius" with the radius in kilometres.
        centre = f"{_decimal(point['lat'])},{_decimal(point['lon'])}"
        _sub(area, "circle", f"{centre} {_decimal(point.get('radius_km', 0))}")


def _decimal(value: float) -> str:
    """Plain decimal notation (never 1e-05), as the WGS 84 pairs of CAP are written."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def atom_feed(alerts: Sequence[Alert], *, base_url: str, feed_url: str, now: datetime) -> bytes:
    """RFC 4287 feed of public alerts, each entry linking to its CAP document."""

    def sub(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> None:
        element = etree.SubElement(parent, f"{{{ATOM_NAMESPACE}}}{name}", attributes)
        if text is not None:
            element.text = text

    feed = etree.Element(f"{{{ATOM_NAMESPACE}}}feed", nsmap={None: ATOM_NAMESPACE})
    sub(feed, "id", "urn:bali-process:consultation:public-alerts")
    sub(feed, "title", "Bali Process Consultation Mechanism: public alerts")
    updated = max((as_utc(a.updated_at) for a in alerts), default=now)
    sub(feed, "updated", atom_datetime(updated))
    sub(feed, "link", rel="self", type=ATOM_MEDIA_TYPE, href=feed_url)
    author = etree.SubElement(feed, f"{{{ATOM_NAMESPACE}}}author")
    sub(author, "name", "Bali Process Consultation Mechanism")
    for alert in alerts:
        entry = etree.SubElement(feed, f"{{{ATOM_NAMESPACE}}}entry")
        sub(entry, "id", f"urn:uuid:{alert.id}")
        sub(entry, "title", alert.title)
        sub(entry, "updated", atom_datetime(alert.updated_at))
        sub(entry, "published", atom_datetime(alert.raised_at))
        entry_author = etree.SubElement(entry, f"{{{ATOM_NAMESPACE}}}author")
        sub(entry_author, "name", alert.raised_by_member)
        label = SITUATION_LABELS[SituationType(alert.situation_type)]
        sub(
            entry,
            "summary",
            f"{alert.severity} - {label} - {alert.status.replace('_', ' ')}: {alert.description}",
        )
        sub(entry, "category", term=alert.severity, label=f"Severity {alert.severity}")
        sub(entry, "category", term=alert.situation_type, label=label)
        sub(
            entry,
            "link",
            rel="alternate",
            type=CAP_MEDIA_TYPE,
            href=f"{base_url}/v1/alerts/{alert.id}/cap.xml",
        )
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True))
