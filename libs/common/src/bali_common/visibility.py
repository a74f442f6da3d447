"""Who may see a Consultation Mechanism alert: decided here once, used by every service.

Public alerts are for everyone. A restricted alert is shown only to the co-chairs, the
member that raised it and the members it affects (and to platform administrators). A
co-chair is a person holding the `co_chair` role *and* acting for a member that the
directory lists as co-chair: the role alone (a token of TH with `co_chair`) is not enough,
nor is belonging to a co-chair member (an AU user with the plain `member` role).

Every path that shows alert content (API, timeline, CAP, feed, inbox, stream, deliveries,
emails, webhooks, dashboard, reports) asks `AlertViewer.may_see`; list queries put
`where_visible` in their SQL, which says the same: everything when
`AlertViewer.sees_everything`, otherwise public alerts plus those that name
`AlertViewer.member_id`. People are viewers through `alert_viewer`; recipients that stand for
a member rather than a person (its focal points' mailboxes, its webhook) through
`member_recipient`. Only acting co-chairs take the co-chairs' actions
(`AlertViewer.is_co_chair`): administrators see everything but act for no member.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, or_, true

from bali_common.auth import Principal, Role
from bali_common.events.alerts import Sensitivity


@dataclass(frozen=True)
class AlertAudience:
    """What of an alert decides who may see it."""

    sensitivity: Sensitivity
    raised_by_member: str
    affected_members: frozenset[str]

    @property
    def is_public(self) -> bool:
        return self.sensitivity is Sensitivity.public

    def names(self, member_id: str) -> bool:
        """The member raised the alert or is affected by it."""
        return member_id == self.raised_by_member or member_id in self.affected_members


def is_acting_co_chair(principal: Principal, co_chair_members: Collection[str]) -> bool:
    """The `co_chair` role, for a member the directory lists as co-chair."""
    return (
        principal.has_role(Role.co_chair)
        and principal.member_id is not None
        and principal.member_id in co_chair_members
    )


def sees_every_member(principal: Principal, co_chair_members: Collection[str]) -> bool:
    """Operations staff, administrators and acting co-chairs see what concerns every member
    (another member's deleted records, its focal points' contacts); a `co_chair` role held for
    a member the directory does not list as co-chair sees as that member does."""
    return principal.allows(Role.ops) or is_acting_co_chair(principal, co_chair_members)


@dataclass(frozen=True)
class AlertViewer:
    """A caller as the visibility rule sees them; build it with `alert_viewer`."""

    sees_everything: bool
    member_id: str | None
    #: Acts for the co-chairs: may acknowledge, escalate, convene, resolve.
    is_co_chair: bool = False

    def may_see(self, audience: AlertAudience) -> bool:
        if audience.is_public or self.sees_everything:
            return True
        return self.names_me(audience)

    def names_me(self, audience: AlertAudience) -> bool:
        """The alert names the viewer's member (as its raiser or as affected)."""
        return self.member_id is not None and audience.names(self.member_id)


def alert_viewer(principal: Principal, *, co_chair_members: Collection[str]) -> AlertViewer:
    """`co_chair_members`: the member ids the caller's service's directory lists as co-chairs."""
    co_chair = is_acting_co_chair(principal, co_chair_members)
    return AlertViewer(
        sees_everything=principal.is_admin or co_chair,
        member_id=principal.member_id,
        is_co_chair=co_chair,
    )


def member_recipient(
    member_id: str | None, *, for_co_chairs: bool, co_chair_members: Collection[str]
) -> AlertViewer:
    """A recipient that stands for a member rather than a person: what it may be sent.

    It sees what its member is named in; everything only when it serves the member's
    co-chairs (`for_co_chairs`: the co-chair focal points the directory lists, or a
    subscription an acting co-chair of the member made) and the directory lists the member
    as co-chair. Administrators' rights never pass to a member's endpoint.
    """
    co_chair = for_co_chairs and member_id is not None and member_id in co_chair_members
    return AlertViewer(sees_everything=co_chair, member_id=member_id, is_co_chair=co_chair)


def where_visible(
    viewer: AlertViewer,
    *,
    sensitivity: Any,
    names_member: Callable[[str], ColumnElement[bool]],
) -> ColumnElement[bool]:
    """`may_see` as a SQL condition for list queries.

    `sensitivity` is the column holding the alert's sensitivity (NULL, for an alert whose
    audience is not known, counts as restricted); `names_member(m)` is the condition that
    the alert names member `m` (raised it or affects it).
    """
    if viewer.sees_everything:
        return true()
    visible = [sensitivity == Sensitivity.public.value]
    if viewer.member_id is not None:
        visible.append(names_member(viewer.member_id))
    return or_(*visible)
