"""Field types of the activity API: what one value may be, checked and normalised."""

from __future__ import annotations

import re
from typing import Annotated

from bali_common.events.activities import ParticipantRole
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from bali_activities.activities.models import (
    MAX_AGE_GROUPS,
    MAX_DESCRIPTION,
    MAX_ITEM,
    MAX_QUANTITY,
    MAX_TAG,
    MAX_TITLE,
)
from bali_activities.members.models import HttpUrlText, MemberId, upper_stripped

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _single_line(value: str) -> str:
    if any(character in value for character in "\r\n\t"):
        raise ValueError("must be a single line")
    return value


def _normal_tag(value: str) -> str:
    tag = " ".join(value.split()).lower()
    if not tag:
        raise ValueError("must not be blank")
    if ";" in tag:
        raise ValueError("must not contain ';'")
    return tag


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE),
    AfterValidator(_no_control_characters),
    AfterValidator(_single_line),
]


Description = Annotated[
    str, StringConstraints(max_length=MAX_DESCRIPTION), AfterValidator(_no_control_characters)
]


ItemNumber = Annotated[int, Field(ge=1, le=MAX_ITEM, description="Strategy item number")]


Tag = Annotated[
    str,
    StringConstraints(max_length=MAX_TAG),
    AfterValidator(_no_control_characters),
    AfterValidator(_normal_tag),
]


Country = Annotated[
    str,
    BeforeValidator(upper_stripped),
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    Field(description="ISO 3166-1 alpha-2 country code", examples=["TH"]),
]


def _compact_number(value: float) -> int | float:
    """40, not 40.0: counts of people read as counts."""
    return int(value) if value.is_integer() else value


Quantity = Annotated[
    float,
    Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False),
    PlainSerializer(_compact_number, return_type=int | float),
]


AlertId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"),
]


class ParticipantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: MemberId
    role: ParticipantRole = ParticipantRole.participant


class SexBreakdown(BaseModel):
    """Parts of an output value by sex; together at most the value."""

    model_config = ConfigDict(extra="forbid")

    female: Quantity | None = None
    male: Quantity | None = None
    other: Quantity | None = Field(default=None, description="Other or not recorded")


class AgeBreakdown(BaseModel):
    model_config = ConfigDict(extra="forbid")

    age_group: Annotated[
        str,
        StringConstraints(strip_whitespace=True, pattern=r"^\d{1,3}(-\d{1,3}|\+)$"),
        Field(description="An age range such as '18-24', or '60+'"),
    ]
    value: Quantity


class OutputIn(BaseModel):
    """An indicator value the activity produced, optionally broken down by sex and age."""

    model_config = ConfigDict(extra="forbid")

    indicator: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        AfterValidator(_no_control_characters),
    ]
    value: Quantity
    unit: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = None
    by_sex: SexBreakdown | None = None
    by_age: list[AgeBreakdown] = Field(default_factory=list, max_length=MAX_AGE_GROUPS)


class DocumentLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        AfterValidator(_no_control_characters),
    ]
    url: HttpUrlText
