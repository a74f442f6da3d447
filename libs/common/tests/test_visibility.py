"""The one alert visibility rule, over every role and member relation."""

from __future__ import annotations

import pytest
from bali_common.auth import Principal, Role
from bali_common.events.alerts import Sensitivity
from bali_common.visibility import AlertAudience, alert_viewer, is_acting_co_chair

CO_CHAIRS = frozenset({"AU", "ID"})
RESTRICTED = AlertAudience(
    sensitivity=Sensitivity.restricted, raised_by_member="MY", affected_members=frozenset({"TH"})
)
PUBLIC = AlertAudience(
    sensitivity=Sensitivity.public, raised_by_member="MY", affected_members=frozenset()
)


def caller(member: str | None, *roles: Role) -> Principal:
    return Principal(subject=f"user-of-{member}", member_id=member, roles=frozenset(roles))


@pytest.mark.parametrize(
    ("principal", "sees_restricted"),
    [
        (caller("AU", Role.co_chair), True),
        (caller("ID", Role.co_chair, Role.member), True),
        (caller("AU", Role.member), False),  # a co-chair member's plain user
        (caller("TH", Role.co_chair), True),  # affected, so yes, though not a co-chair
        (caller("NZ", Role.co_chair), False),  # the role without the directory's word
        (caller("MY", Role.member), True),  # raised it
        (caller("TH", Role.member), True),  # affected
        (caller("NZ", Role.member), False),
        (caller("RSO", Role.ops), False),
        (caller(None, Role.admin), True),
        (caller(None), False),
    ],
)
def test_restricted_alerts_reach_co_chairs_raiser_affected_and_admins_only(
    principal: Principal, sees_restricted: bool
) -> None:
    viewer = alert_viewer(principal, co_chair_members=CO_CHAIRS)
    assert viewer.may_see(RESTRICTED) is sees_restricted
    assert viewer.may_see(PUBLIC)


def test_the_co_chair_role_counts_only_for_a_member_listed_as_co_chair() -> None:
    assert is_acting_co_chair(caller("AU", Role.co_chair), CO_CHAIRS)
    assert not is_acting_co_chair(caller("TH", Role.co_chair), CO_CHAIRS)
    assert not is_acting_co_chair(caller("AU", Role.member), CO_CHAIRS)
    assert not is_acting_co_chair(caller(None, Role.co_chair), CO_CHAIRS)


def test_list_queries_filter_unless_the_viewer_sees_everything() -> None:
    assert alert_viewer(caller("ID", Role.co_chair), co_chair_members=CO_CHAIRS).sees_everything
    nz = alert_viewer(caller("NZ", Role.member), co_chair_members=CO_CHAIRS)
    assert not nz.sees_everything
    assert nz.member_id == "NZ"
