"""Field shapes the service's tables and API models share: ids, UTC timestamps, lists, addresses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import uuid4

from bali_common.db import as_utc, utc_column, utcnow
from pydantic import AfterValidator
from sqlalchemy import JSON, Column
from sqlmodel import Field

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

#: SQLite hands back naive datetimes for what was stored as UTC; the API always says UTC.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def new_id() -> str:
    return str(uuid4())


def timestamp_now() -> Any:
    """A required timezone-aware column, now unless set (a fresh Column per table field)."""
    return Field(default_factory=utcnow, sa_column=utc_column())


def timestamp_unset() -> Any:
    """A timezone-aware column that stays NULL until the moment it records happens."""
    return Field(default=None, sa_column=utc_column(nullable=True))


def json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def is_email_address(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None
