"""The member directory projection: snapshots applied by version, unknown members let through."""

from __future__ import annotations

import logging

import pytest
import pytest_asyncio
from bali_common.events.members import FocalPointData, FocalPointRole, MemberUpdated
from bali_common.messaging.inbox import InboxEntry
from bali_devkit.testing.plugin import eventually
from consultation_testkit import (
    Service,
    add_to_directory,
    alert_body,
    directory_members,
    member_snapshot,
    publish_members,
)
from sqlmodel import col, select


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(service: Service) -> Service:
    """The module's service, with co-chairs ID and AU and member TH in its directory."""
    await add_to_directory(
        service,
        [
            member_snapshot("ID", co_chair=True),
            member_snapshot("AU", co_chair=True),
            member_snapshot("TH"),
        ],
    )
    return service


async def test_an_affected_member_the_directory_lacks_never_blocks_an_alert(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """The directory is a projection that can lag; an emergency must not wait for it."""
    caplog.set_level(logging.WARNING, logger="bali_consultation.directory")
    response = await service.client.post(
        "/v1/alerts",
        json=alert_body(affected_members=["TH", "XX", "ID"]),
        headers=service.auth("MY"),
    )
    assert response.status_code == 201
    assert response.json()["affected_members"] == ["TH", "XX", "ID"]
    assert "not (yet) in the directory: XX" in caplog.text


async def test_member_snapshots_apply_by_version_and_stale_ones_are_ignored(
    service: Service,
) -> None:
    focal = FocalPointData(
        focal_point_id="TH-9",
        name="Senior",
        email="so@mfa.go.th",
        role=FocalPointRole.senior_official,
    )
    newer = MemberUpdated(
        **{
            **member_snapshot("TH").model_dump(),
            "name": "Thailand",
            "version": 3,
            "focal_points": [focal],
        }
    )
    older = MemberUpdated(
        **{**member_snapshot("TH").model_dump(), "name": "Old name", "version": 2}
    )
    events = await publish_members(service, [newer, older])

    async def both_applied() -> bool:
        async with service.sessions() as session:
            applied = await session.exec(
                select(InboxEntry.event_id).where(
                    col(InboxEntry.event_id).in_([str(e.id) for e in events])
                )
            )
            return len(applied.all()) == 2

    await eventually(both_applied)
    current = (await directory_members(service))["TH"]
    assert (current.name, current.version) == ("Thailand", 3)
    assert current.focal_points[0]["email"] == "so@mfa.go.th"


async def test_who_acts_as_co_chair_follows_the_directory(service: Service) -> None:
    """A co-chair token counts only while the directory lists its member as co-chair; the
    settings' co-chairs stand in only while the directory names none."""
    raised = await service.client.post(
        "/v1/alerts",
        json=alert_body(sensitivity="restricted", affected_members=["TH"]),
        headers=service.auth("MY"),
    )
    alert_id = raised.json()["id"]
    au = service.auth.co_chair("AU")
    assert (await service.client.get(f"/v1/alerts/{alert_id}", headers=au)).status_code == 200

    await _set_co_chair(service, "AU", co_chair=False, version=2)
    assert (await service.client.get(f"/v1/alerts/{alert_id}", headers=au)).status_code == 404
    refused = await service.client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=au)
    assert refused.status_code == 404

    await _set_co_chair(service, "AU", co_chair=True, version=3)
    acknowledged = await service.client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=au)
    assert acknowledged.status_code == 200, acknowledged.text


async def _set_co_chair(service: Service, member_id: str, *, co_chair: bool, version: int) -> None:
    snapshot = MemberUpdated(
        **{**member_snapshot(member_id, co_chair=co_chair).model_dump(), "version": version}
    )
    await publish_members(service, [snapshot])

    async def applied() -> bool:
        return (await directory_members(service))[member_id].version == version

    await eventually(applied)
