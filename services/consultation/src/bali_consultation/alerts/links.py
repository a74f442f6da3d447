"""One-click acknowledge links of the notification emails: verified, single use, for a co-chair."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bali_common.auth import Principal, Role
from bali_common.links import (
    ACKNOWLEDGE_LINK_PURPOSE,
    ExpiredLinkToken,
    InvalidLinkToken,
    LinkClaims,
    verify_link_token,
)
from bali_common.problems import ProblemError, forbidden
from bali_common.visibility import AlertViewer
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation import directory
from bali_consultation.alerts import access, lifecycle, queries
from bali_consultation.alerts.models import Alert, UsedLinkToken
from bali_consultation.alerts.steps import Step
from bali_consultation.settings import ConsultationSettings


def _verify(
    *, settings: ConsultationSettings, token: str, alert_id: str, now: datetime
) -> LinkClaims:
    """Signature, purpose, expiry and the alert it was minted for; single use is checked apart."""
    try:
        claims = verify_link_token(
            settings.link_verifying_secrets, token, purpose=ACKNOWLEDGE_LINK_PURPOSE, now=now
        )
    except ExpiredLinkToken:
        raise ProblemError(
            410,
            "Link expired",
            "This acknowledge link has expired. Acknowledge the alert from the platform.",
            slug="link-expired",
        ) from None
    except InvalidLinkToken:
        raise _invalid() from None
    if claims.subject != alert_id:
        raise _invalid()
    return claims


def _invalid() -> ProblemError:
    return ProblemError(
        403, "Invalid link", "This acknowledge link is not valid.", slug="link-invalid"
    )


def _already_used() -> ProblemError:
    return ProblemError(
        409, "Link already used", "This acknowledge link has already been used.", slug="link-used"
    )


async def _was_used(*, session: AsyncSession, claims: LinkClaims) -> bool:
    return await session.get(UsedLinkToken, claims.token_id) is not None


async def _principal_for(
    *, session: AsyncSession, settings: ConsultationSettings, recipient: str
) -> Principal:
    """The co-chair a link was minted for, by member id or focal point email.

    The signature vouches for the recipient; the directory, once it names co-chairs,
    must agree that the recipient is one of them.
    """
    members = await directory.members(session=session)
    wanted = recipient.casefold()
    for member in members:
        if member.member_id == recipient:
            if member.is_co_chair and member.active:
                return _acting_for(recipient, member.member_id, member.name, None)
            raise forbidden("The link's recipient is not a co-chair.")
        for focal_point in member.focal_points:
            if str(focal_point.get("email", "")).casefold() != wanted:
                continue
            if member.is_co_chair and member.active and focal_point.get("active", True):
                name = str(focal_point.get("name") or member.name)
                return _acting_for(recipient, member.member_id, name, recipient)
            raise forbidden("The link's recipient is not a co-chair focal point.")
    directory_names_co_chairs = any(m.is_co_chair for m in members)
    if directory_names_co_chairs:
        raise forbidden("The link's recipient is not a co-chair.")
    member_id = recipient if recipient in settings.co_chair_members else None
    email = recipient if "@" in recipient else None
    return _acting_for(recipient, member_id, None, email)


def _acting_for(
    recipient: str, member_id: str | None, name: str | None, email: str | None
) -> Principal:
    return Principal(
        subject=f"link:{recipient}",
        member_id=member_id,
        roles=frozenset({Role.co_chair}),
        name=name,
        email=email,
    )


@dataclass(frozen=True)
class _Holder:
    """Who acts through a checked link, and how the visibility rule sees them."""

    claims: LinkClaims
    principal: Principal
    viewer: AlertViewer


async def _checked(
    *,
    session: AsyncSession,
    alert_id: str,
    token: str,
    settings: ConsultationSettings,
    now: datetime,
) -> _Holder:
    """What every use of a link checks: genuine, unexpired, for this alert, unused, and minted
    for a co-chair, who is the principal acting through it."""
    claims = _verify(settings=settings, token=token, alert_id=alert_id, now=now)
    if await _was_used(session=session, claims=claims):
        raise _already_used()
    principal = await _principal_for(session=session, settings=settings, recipient=claims.recipient)
    viewer = await access.viewer_of(session=session, principal=principal, settings=settings)
    return _Holder(claims, principal, viewer)


async def acknowledge(
    *,
    session: AsyncSession,
    alert_id: str,
    token: str,
    settings: ConsultationSettings,
    now: datetime,
    source: str | None = None,
) -> Alert:
    """Acknowledge on behalf of the co-chair the link was minted for; the token is spent in the
    same transaction, so a reused link never acknowledges twice."""
    holder = await _checked(
        session=session, alert_id=alert_id, token=token, settings=settings, now=now
    )
    claims = holder.claims
    session.add(
        UsedLinkToken(
            token_id=claims.token_id,
            purpose=claims.purpose,
            subject=claims.subject,
            recipient=claims.recipient,
            used_at=now,
        )
    )
    try:
        return await lifecycle.acknowledge(
            session=session,
            step=Step(alert_id, holder.principal, now, source=source),
            viewer=holder.viewer,
            via_link=True,
        )
    except IntegrityError:
        await session.rollback()
        raise _already_used() from None


async def inspect(
    *,
    session: AsyncSession,
    alert_id: str,
    token: str,
    settings: ConsultationSettings,
    now: datetime,
) -> Alert:
    """What the link's POST checks first, without acknowledging: for the GET page, which
    shows the alert only to a holder the visibility rule lets see it."""
    holder = await _checked(
        session=session, alert_id=alert_id, token=token, settings=settings, now=now
    )
    return await queries.get_visible_alert(session=session, alert_id=alert_id, viewer=holder.viewer)
