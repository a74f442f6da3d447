"""A member as the API shows it (contacts only to those allowed) and as its events carry it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bali_common.auth import Principal
from bali_common.db import as_utc
from bali_common.events.members import FocalPointData, FocalPointRole, MemberKind

from bali_activities.members.models import FocalPoint, FocalPointPublic, Member, MemberPublic


def may_see_contacts(principal: Principal, member_id: str, *, staff: bool) -> bool:
    """Contacts are personal data: shown to those who act on alerts for every member (`staff`:
    `members.queries.sees_every_member`) and to the member itself."""
    return staff or principal.member_id == member_id


def _member_fields(member: Member) -> dict[str, Any]:
    """What the public representation and the `member.*` events both say of a member."""
    return {
        "member_id": member.member_id,
        "name": member.name,
        "kind": MemberKind(member.kind),
        "is_co_chair": member.is_co_chair,
        "active": member.active,
        "version": member.version,
    }


def _contact_fields(contact: FocalPoint) -> dict[str, Any]:
    return {
        "focal_point_id": contact.focal_point_id,
        "name": contact.name,
        "email": contact.email,
        "role": FocalPointRole(contact.role),
        "webhook_url": contact.webhook_url,
        "active": contact.active,
    }


def snapshot(member: Member, contacts: Sequence[FocalPoint]) -> dict[str, Any]:
    return {
        **_member_fields(member),
        "focal_points": [FocalPointData(**_contact_fields(c)) for c in contacts],
    }


def member_public(
    member: Member, contacts: Sequence[FocalPoint], *, principal: Principal, staff: bool
) -> MemberPublic:
    return MemberPublic(
        **_member_fields(member),
        focal_points=[FocalPointPublic(**_contact_fields(c)) for c in contacts]
        if may_see_contacts(principal, member.member_id, staff=staff)
        else None,
        created_at=as_utc(member.created_at),
        updated_at=as_utc(member.updated_at),
    )
