"""The events published match the changes made: one per change, of the right type and payload."""

from __future__ import annotations

import asyncio

from activities_testkit import PAST, Service
from bali_common.events import Stream
from bali_common.events.activities import (
    ActivityCreated,
    ActivityDeleted,
    ActivityRestored,
    ActivityStatusChanged,
    ActivityUpdated,
)


async def test_each_change_publishes_one_event_of_its_kind(service: Service) -> None:
    activity = await service.create(
        "MY", status="planned", actual_start=None, actual_end=None, items=[12]
    )
    activity_id = activity["id"]
    url = f"/v1/activities/{activity_id}"
    mine = service.tokens("MY")

    status_only = await service.patch(activity_id, {"status": "ongoing"}, version=1)
    assert status_only.status_code == 200
    nothing = await service.patch(activity_id, {"status": "ongoing"}, version=2)
    assert nothing.json()["version"] == 2
    both = await service.patch(
        activity_id,
        {"status": "completed", "actual_start": PAST.isoformat(), "items": [12, 20]},
        version=2,
    )
    assert both.status_code == 200
    details = await service.patch(activity_id, {"tags": ["returns"]}, version=3)
    assert details.status_code == 200
    refused = await service.patch(activity_id, {"title": "stale"}, version=1)
    assert refused.status_code == 412
    assert (await service.client.delete(url, headers=mine)).status_code == 200
    assert (await service.client.post(f"{url}/restore", headers=mine)).status_code == 200

    events = await service.events(Stream.activities, subject=activity_id, expected=7)
    assert [(e.type, e.payload().activity.version) for e in events] == [  # type: ignore[attr-defined]
        ("activity.created", 1),
        ("activity.status_changed", 2),
        ("activity.status_changed", 3),
        ("activity.updated", 3),
        ("activity.updated", 4),
        ("activity.deleted", 5),
        ("activity.restored", 6),
    ]
    payloads = [e.payload() for e in events]
    created, ongoing, completed, updated, tagged, deleted, restored = payloads
    assert isinstance(created, ActivityCreated)
    assert created.activity.activity_id == activity_id
    assert created.activity.item_numbers == [12]
    assert created.activity.area_numbers == [4]
    assert created.activity.lead_member == "MY"
    assert created.activity.participating_members == ["TH", "IOM"]
    assert [p.role.value for p in created.activity.participants] == [
        "lead",
        "co_lead",
        "participant",
    ]
    assert created.activity.outputs[0].indicator == "officers trained"
    assert created.actor.member_id == "MY"
    assert isinstance(ongoing, ActivityStatusChanged)
    assert ongoing.previous_status.value == "planned"
    assert ongoing.activity.status.value == "ongoing"
    assert isinstance(completed, ActivityStatusChanged)
    assert completed.previous_status.value == "ongoing"
    assert isinstance(updated, ActivityUpdated)
    assert updated.changed_fields == ["items", "actual_start"]
    assert updated.activity.area_numbers == [4, 7]
    assert isinstance(tagged, ActivityUpdated)
    assert tagged.changed_fields == ["tags"]
    assert tagged.activity.tags == ["returns"]
    assert isinstance(deleted, ActivityDeleted)
    assert deleted.activity.deleted is True
    assert isinstance(restored, ActivityRestored)
    assert restored.activity.deleted is False
    assert all(e.source == "/bali/activities" for e in events)
    assert all(e.subject == activity_id for e in events)


async def test_concurrent_updates_publish_only_the_winners_change(service: Service) -> None:
    activity = await service.create("MY")
    responses = await asyncio.gather(
        *(
            service.patch(activity["id"], {"title": f"Racing title {n}"}, version=1)
            for n in range(20)
        )
    )
    assert sum(r.status_code == 200 for r in responses) == 1
    events = await service.events(Stream.activities, subject=activity["id"], expected=2)
    assert [e.type for e in events] == ["activity.created", "activity.updated"]


async def test_refused_and_invalid_requests_publish_nothing(service: Service) -> None:
    activity = await service.create("MY")
    await service.patch(activity["id"], {"title": "Not yours"}, version=1, member="TH")
    await service.patch(activity["id"], {"items": [26]}, version=1)
    await service.client.post(
        f"/v1/activities/{activity['id']}/restore", headers=service.tokens("MY")
    )
    events = await service.events(Stream.activities, subject=activity["id"], expected=1)
    assert [e.type for e in events] == ["activity.created"]
