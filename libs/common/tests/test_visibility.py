"""The one alert visibility rule, over every role and member relation."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from bali_common.auth import Principal, Role
from bali_common.events.alerts import Sensitivity
from bali_common.visibility import (
    AlertAudience,
    alert_viewer,
    is_acting_co_chair,
    member_recipient,
    where_visible,
)

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


def test_only_acting_co_chairs_act_for_the_co_chairs_and_admins_see_without_acting() -> None:
    assert alert_viewer(caller("AU", Role.co_chair), co_chair_members=CO_CHAIRS).is_co_chair
    admin = alert_viewer(caller(None, Role.admin), co_chair_members=CO_CHAIRS)
    assert admin.sees_everything
    assert not admin.is_co_chair
    for principal in (caller("TH", Role.co_chair), caller("AU", Role.member)):
        assert not alert_viewer(principal, co_chair_members=CO_CHAIRS).is_co_chair


@pytest.mark.parametrize(
    ("member", "for_co_chairs", "sees_restricted"),
    [
        ("AU", True, True),  # the co-chair focal points, a co-chair's own subscription
        ("AU", False, False),  # AU's endpoint made by a user who is no co-chair
        ("NZ", True, False),  # a member the directory does not list as co-chair
        ("TH", False, True),  # affected
        ("MY", False, True),  # raised it
        (None, True, False),  # an endpoint of no member
    ],
)
def test_a_member_recipient_sees_what_its_member_is_named_in_or_serves_a_co_chair(
    member: str | None, for_co_chairs: bool, sees_restricted: bool
) -> None:
    recipient = member_recipient(member, for_co_chairs=for_co_chairs, co_chair_members=CO_CHAIRS)
    assert recipient.may_see(RESTRICTED) is sees_restricted
    assert recipient.may_see(PUBLIC)


ALERTS = sa.Table(
    "alerts",
    sa.MetaData(),
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("sensitivity", sa.String, nullable=True),
    sa.Column("raised_by", sa.String),
    sa.Column("affected", sa.String),
)
ROWS = [
    {"id": "public", "sensitivity": "public", "raised_by": "MY", "affected": "TH"},
    {"id": "restricted", "sensitivity": "restricted", "raised_by": "MY", "affected": "TH"},
    {"id": "unknown", "sensitivity": None, "raised_by": "MY", "affected": "TH"},
]


@pytest.mark.parametrize(
    "principal",
    [
        caller("AU", Role.co_chair),
        caller("AU", Role.member),
        caller("TH", Role.co_chair),
        caller("MY", Role.member),
        caller("NZ", Role.member),
        caller("RSO", Role.ops),
        caller(None, Role.admin),
        caller(None),
    ],
)
def test_the_sql_condition_selects_what_may_see_allows(principal: Principal) -> None:
    viewer = alert_viewer(principal, co_chair_members=CO_CHAIRS)
    engine = sa.create_engine("sqlite://")
    ALERTS.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(ALERTS.insert(), ROWS)
        condition = where_visible(
            viewer,
            sensitivity=ALERTS.c.sensitivity,
            names_member=lambda m: sa.or_(ALERTS.c.raised_by == m, ALERTS.c.affected == m),
        )
        selected = set(connection.scalars(sa.select(ALERTS.c.id).where(condition)))
    # A sensitivity not known counts as restricted.
    hidden = set() if viewer.may_see(RESTRICTED) else {"restricted", "unknown"}
    assert selected == {"public", "restricted", "unknown"} - hidden
