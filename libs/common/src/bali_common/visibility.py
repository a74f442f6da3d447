"""Who may see a Consultation Mechanism alert: decided here once, used by every service.

Public alerts are for everyone. A restricted alert is shown only to the co-chairs, the
member that raised it and the members it affects (and to platform administrators). A
co-chair is a person holding the `co_chair` role *and* acting for a member that the
directory lists as co-chair: the role alone (a token of TH with `co_chair`) is not enough,
nor is belonging to a co-chair member (an AU user with the plain `member` role).

Every path that shows alert content (API, timeline, CAP, feed, inbox, stream, deliveries,
emails, webhooks, dashboard, reports) asks `AlertViewer.may_see`; list queries ask
`AlertViewer.sees_everything` and otherwise filter to public alerts plus those that name
`AlertViewer.member_id`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

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


@dataclass(frozen=True)
class AlertViewer:
    """A caller as the visibility rule sees them; build it with `alert_viewer`."""

    sees_everything: bool
    member_id: str | None

    def may_see(self, audience: AlertAudience) -> bool:
        if audience.is_public or self.sees_everything:
            return True
        return self.member_id is not None and audience.names(self.member_id)


def alert_viewer(principal: Principal, *, co_chair_members: Collection[str]) -> AlertViewer:
    """`co_chair_members`: the member ids the caller's service's directory lists as co-chairs."""
    return AlertViewer(
        sees_everything=principal.is_admin or is_acting_co_chair(principal, co_chair_members),
        member_id=principal.member_id,
    )
