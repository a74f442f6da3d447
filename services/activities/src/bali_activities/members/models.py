"""Tables and API models of the member directory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from bali_common.db import utcnow
from bali_common.events.members import FocalPointRole, MemberKind
from bali_common.http.pagination import Page
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
)
from sqlalchemy import Column, DateTime, Index
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

MEMBER_ID_PATTERN = r"^[A-Z][A-Z0-9-]{1,19}$"


def upper_stripped(value: object) -> object:
    """Codes are compared in upper case; pydantic checks a pattern before its own `to_upper`."""
    return value.strip().upper() if isinstance(value, str) else value


MemberId = Annotated[
    str,
    BeforeValidator(upper_stripped),
    StringConstraints(pattern=MEMBER_ID_PATTERN),
    Field(
        description="ISO 3166 alpha-2 code for a state, a short code for others",
        examples=["AU", "IOM"],
    ),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
    ),
]


_HTTP_URLS: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def checked_http_url(value: str) -> str:
    """An absolute http(s) URL, kept as the text the client sent (normalised by pydantic)."""
    return str(_HTTP_URLS.validate_python(value))


HttpUrlText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2000),
    AfterValidator(checked_http_url),
    WithJsonSchema({"type": "string", "format": "uri", "maxLength": 2000}),
]
WebhookUrl = Annotated[
    HttpUrlText,
    Field(description="Where notifications for this focal point are posted (signed webhooks)"),
]


# --- tables -----------------------------------------------------------------------------------


class Member(SQLModel, table=True):
    """One member of the directory; `version` orders its `member.*` events."""

    __tablename__ = "members"

    member_id: str = SQLField(primary_key=True, max_length=20)
    name: str = SQLField(max_length=200)
    kind: str = SQLField(max_length=40)
    is_co_chair: bool = False
    active: bool = True
    version: int = 1
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class FocalPoint(SQLModel, table=True):
    """A contact of a member; fictional placeholders until an administrator sets real ones."""

    __tablename__ = "focal_points"
    __table_args__ = (Index("ix_focal_points_member", "member_id", "position"),)

    focal_point_id: str = SQLField(primary_key=True, max_length=64)
    member_id: str = SQLField(foreign_key="members.member_id", max_length=20)
    position: int = 0
    name: str = SQLField(max_length=200)
    email: str = SQLField(max_length=254)
    role: str = SQLField(max_length=40)
    webhook_url: str | None = SQLField(default=None, max_length=2100)
    active: bool = True


# --- API models -------------------------------------------------------------------------------

_FOCAL_POINT_EXAMPLE: dict[str, Any] = {
    "name": "Example Focal Point",
    "email": "focal.point@th.example",
    "role": "focal_point",
    "webhook_url": "https://hooks.th.example/bali-process",
}


class FocalPointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [_FOCAL_POINT_EXAMPLE]}
    )

    name: Name
    email: Email
    role: FocalPointRole = FocalPointRole.focal_point
    webhook_url: WebhookUrl | None = None
    active: bool = True


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null")
    return value


class FocalPointUpdate(BaseModel):
    """Only the fields sent change; `webhook_url: null` removes the webhook."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"email": "new.focal.point@th.example", "active": True}]},
    )

    name: Name | None = None
    email: Email | None = None
    role: FocalPointRole | None = None
    webhook_url: WebhookUrl | None = None
    active: bool | None = None

    @field_validator("name", "email", "role", "active", mode="before")
    @classmethod
    def _sent_fields_not_null(cls, value: Any) -> Any:
        return _not_null(value)


class FocalPointPublic(BaseModel):
    focal_point_id: str
    name: str
    email: str
    role: FocalPointRole
    webhook_url: str | None = None
    active: bool


_MEMBER_CREATE_EXAMPLE: dict[str, Any] = {
    "member_id": "WG-BM",
    "name": "Working Group on Border Management",
    "kind": "working_group",
    "is_co_chair": False,
    "focal_points": [
        {"name": "Example Focal Point", "email": "focal.point@wg-bm.example", "role": "focal_point"}
    ],
}


class MemberCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [_MEMBER_CREATE_EXAMPLE]}
    )

    member_id: MemberId
    name: Name
    kind: MemberKind
    is_co_chair: bool = False
    focal_points: list[FocalPointCreate] = Field(default_factory=list, max_length=20)


class MemberUpdate(BaseModel):
    """Only the fields sent change; focal points have their own routes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Kingdom of Thailand", "active": True}]},
    )

    name: Name | None = None
    kind: MemberKind | None = None
    is_co_chair: bool | None = None
    active: bool | None = None

    @field_validator("name", "kind", "is_co_chair", "active", mode="before")
    @classmethod
    def _sent_fields_not_null(cls, value: Any) -> Any:
        return _not_null(value)


_MEMBER_PUBLIC_EXAMPLE: dict[str, Any] = {
    "member_id": "AU",
    "name": "Australia",
    "kind": "member_state",
    "is_co_chair": True,
    "active": True,
    "version": 1,
    "focal_points": [
        {
            "focal_point_id": "au-focal-point",
            "name": "Example Focal Point (Australia)",
            "email": "focal.point@au.example",
            "role": "focal_point",
            "webhook_url": None,
            "active": True,
        }
    ],
    "created_at": "2026-01-05T00:00:00Z",
    "updated_at": "2026-01-05T00:00:00Z",
}


class MemberPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_MEMBER_PUBLIC_EXAMPLE]})

    member_id: str
    name: str
    kind: MemberKind
    is_co_chair: bool
    active: bool
    version: int
    focal_points: list[FocalPointPublic] | None = Field(
        default=None,
        description="Contacts; shown to admins, operations, co-chairs and the member itself",
    )
    created_at: datetime
    updated_at: datetime


class MembersPublic(Page[MemberPublic]):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_MEMBER_PUBLIC_EXAMPLE], "next_cursor": None}]}
    )
