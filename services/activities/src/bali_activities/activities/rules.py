"""Rules an activity must keep beyond its schema; each broken rule names the offending field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

from bali_common.events.activities import ParticipantRole
from bali_common.problems import FieldProblem

from bali_activities.activities.models import STRATEGY
from bali_activities.activities.schemas import ActivityFields

#: Kiribati (UTC+14) is the first place where a day begins: no member's today is later.
_EARLIEST_ZONE = timedelta(hours=14)


def latest_today(now: datetime) -> date:
    """The latest date that is already today somewhere in the membership."""
    return (now + _EARLIEST_ZONE).date()


def _problem(field: str, message: str) -> FieldProblem:
    return FieldProblem(field=field, message=message, type="value_error")


def rule_problems(
    fields: ActivityFields,
    *,
    prefix: str,
    today: date,
    members: Mapping[str, bool],
    already_involved: frozenset[str] = frozenset(),
) -> list[FieldProblem]:
    """Every broken rule, not just the first, so a client can fix them in one go.

    `members` maps each referenced member id that exists to whether it is active;
    members already on the activity may stay even if they became inactive.
    """
    problems: list[FieldProblem] = []
    problems += _item_problems(fields, prefix)
    problems += _date_problems(fields, prefix, today)
    problems += _member_problems(fields, prefix, members, already_involved)
    problems += _output_problems(fields, prefix)
    return problems


def _item_problems(fields: ActivityFields, prefix: str) -> list[FieldProblem]:
    problems = []
    seen: set[int] = set()
    for index, number in enumerate(fields.items):
        if number not in STRATEGY.item_numbers:
            problems.append(
                _problem(f"{prefix}.items.{index}", f"strategy {STRATEGY.id} has no item {number}")
            )
        elif number in seen:
            problems.append(_problem(f"{prefix}.items.{index}", f"item {number} is listed twice"))
        seen.add(number)
    return problems


def _date_problems(fields: ActivityFields, prefix: str, today: date) -> list[FieldProblem]:
    problems = []
    if fields.planned_start and fields.planned_end and fields.planned_end < fields.planned_start:
        problems.append(_problem(f"{prefix}.planned_end", "must not be before planned_start"))
    if fields.actual_start and fields.actual_end and fields.actual_end < fields.actual_start:
        problems.append(_problem(f"{prefix}.actual_end", "must not be before actual_start"))
    for name in ("actual_start", "actual_end"):
        value = getattr(fields, name)
        if value is not None and value > today:
            problems.append(
                _problem(f"{prefix}.{name}", "must not be in the future (use the planned dates)")
            )
    return problems


def _member_problems(
    fields: ActivityFields,
    prefix: str,
    members: Mapping[str, bool],
    already_involved: frozenset[str],
) -> list[FieldProblem]:
    def unusable(member_id: str) -> str | None:
        if member_id not in members:
            return f"no member {member_id} in the directory"
        if not members[member_id] and member_id not in already_involved:
            return f"member {member_id} is inactive"
        return None

    problems = []
    lead = fields.lead_member
    if lead is None:
        problems.append(_problem(f"{prefix}.lead_member", "required: name the lead member"))
    elif (reason := unusable(lead)) is not None:
        problems.append(_problem(f"{prefix}.lead_member", reason))
    seen: set[str] = set()
    for index, participant in enumerate(fields.participants):
        where = f"{prefix}.participants.{index}"
        if participant.member_id in seen:
            problems.append(_problem(f"{where}.member_id", "member is listed twice"))
        elif participant.member_id == lead and participant.role is not ParticipantRole.lead:
            problems.append(
                _problem(f"{where}.role", "the lead member can only take the lead role")
            )
        elif participant.member_id != lead and participant.role is ParticipantRole.lead:
            problems.append(_problem(f"{where}.role", "only lead_member takes the lead role"))
        elif (reason := unusable(participant.member_id)) is not None:
            problems.append(_problem(f"{where}.member_id", reason))
        seen.add(participant.member_id)
    return problems


def _output_problems(fields: ActivityFields, prefix: str) -> list[FieldProblem]:
    problems = []
    for index, output in enumerate(fields.outputs):
        where = f"{prefix}.outputs.{index}"
        if output.by_sex is not None:
            parts = (output.by_sex.female, output.by_sex.male, output.by_sex.other)
            if sum(part or 0 for part in parts) > output.value:
                problems.append(_problem(f"{where}.by_sex", "adds up to more than value"))
        if sum(group.value for group in output.by_age) > output.value:
            problems.append(_problem(f"{where}.by_age", "adds up to more than value"))
        groups: set[str] = set()
        for position, group in enumerate(output.by_age):
            if group.age_group in groups:
                problems.append(
                    _problem(f"{where}.by_age.{position}.age_group", "age group is listed twice")
                )
            groups.add(group.age_group)
    return problems


def involved_members(fields: ActivityFields) -> set[str]:
    """Member ids the rules look up: the lead and every participant."""
    ids = {p.member_id for p in fields.participants}
    if fields.lead_member is not None:
        ids.add(fields.lead_member)
    return ids
