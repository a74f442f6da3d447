"""Who may see an alert and who may act on it."""

from __future__ import annotations

from bali_common.auth import Principal, Role
from bali_common.events.alerts import Sensitivity
from bali_common.problems import ProblemError, not_found

from bali_consultation.alerts.models import Alert


def is_co_chair(principal: Principal) -> bool:
    """Co-chair actions are authorised by the token role (admin passes as everywhere)."""
    return principal.allows(Role.co_chair)


def is_raiser(alert: Alert, principal: Principal) -> bool:
    return principal.member_id is not None and principal.member_id == alert.raised_by_member


def is_involved(alert: Alert, principal: Principal) -> bool:
    """The co-chairs, the raising member and the affected members."""
    if is_co_chair(principal):
        return True
    member = principal.member_id
    return member is not None and (
        member == alert.raised_by_member or member in alert.affected_members
    )


def can_see(alert: Alert, principal: Principal) -> bool:
    """Restricted alerts: only the co-chairs, the raising member and the affected members."""
    return alert.sensitivity == Sensitivity.public or is_involved(alert, principal)


def not_visible(alert_id: str) -> ProblemError:
    """The same answer whether the alert does not exist or is hidden from the caller."""
    return not_found(f"No alert {alert_id} is visible to you.")
