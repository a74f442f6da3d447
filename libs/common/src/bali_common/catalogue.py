"""Bali Process strategy catalogue, shipped as versioned reference data beside this module."""

from __future__ import annotations

import functools
import json
import re
from datetime import date
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

__all__ = [
    "DEFAULT_STRATEGY_ID",
    "Strategy",
    "StrategyArea",
    "StrategyItem",
    "UnknownStrategy",
    "UnknownStrategyArea",
    "UnknownStrategyItem",
    "available_strategies",
    "load_strategy",
]

DEFAULT_STRATEGY_ID = "adelaide-2023"

# Strategy ids double as file names, so only allow a safe slug: it keeps lookups
# from escaping the data directory and keeps ids stable in URLs and events.
_STRATEGY_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]*")
_DATA_DIR = "catalogue_data"


class UnknownStrategy(KeyError):
    """A KeyError so callers can treat catalogue misses like any other missing key."""

    def __init__(self, strategy_id: str, available: list[str] | None = None) -> None:
        super().__init__(strategy_id)
        self.strategy_id = strategy_id
        self.available = list(available or [])

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the argument; a sentence reads better in logs.
        known = ", ".join(self.available) or "none"
        return f"unknown strategy {self.strategy_id!r} (available: {known})"


class UnknownStrategyItem(KeyError):
    """A KeyError so callers can treat catalogue misses like any other missing key."""

    def __init__(self, strategy_id: str, number: int) -> None:
        super().__init__(number)
        self.strategy_id = strategy_id
        self.number = number

    def __str__(self) -> str:
        return f"strategy {self.strategy_id!r} has no item number {self.number!r}"


class UnknownStrategyArea(KeyError):
    """Kept apart from UnknownStrategyItem because area and item numbers are different spaces."""

    def __init__(self, strategy_id: str, number: int) -> None:
        super().__init__(number)
        self.strategy_id = strategy_id
        self.number = number

    def __str__(self) -> str:
        return f"strategy {self.strategy_id!r} has no area number {self.number!r}"


class StrategyItem(BaseModel):
    """Carries its area number so an item can be reported on without its parent at hand."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=1)
    text: str = Field(min_length=1)
    area_number: int = Field(ge=1)


class StrategyArea(BaseModel):
    """Groups items as the ministers grouped them; numbering is the document's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=1)
    name: str = Field(min_length=1)
    # An empty area would be a transcription mistake, never a real strategy heading.
    items: tuple[StrategyItem, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _inherit_area_number(cls, data: Any) -> Any:
        # The JSON leaves area_number implicit to avoid duplicating it on every item.
        if isinstance(data, dict) and isinstance(data.get("items"), list | tuple):
            number = data.get("number")
            data = {
                **data,
                "items": [
                    {"area_number": number, **item} if isinstance(item, dict) else item
                    for item in data["items"]
                ],
            }
        return data

    @model_validator(mode="after")
    def _items_belong_here(self) -> StrategyArea:
        for item in self.items:
            if item.area_number != self.number:
                raise ValueError(
                    f"item {item.number} claims area {item.area_number} "
                    f"but is listed under area {self.number}"
                )
        return self


class Strategy(BaseModel):
    """Immutable so a cached instance can be shared safely across requests and tasks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_STRATEGY_ID_RE.pattern)
    title: str = Field(min_length=1)
    adopted: date
    source: str = ""
    areas: tuple[StrategyArea, ...] = Field(min_length=1)

    _items_by_number: dict[int, StrategyItem] = PrivateAttr(default_factory=dict)
    _areas_by_number: dict[int, StrategyArea] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _numbering_is_sound(self) -> Strategy:
        # Activities and reports refer to items by number alone, so gaps or
        # duplicates would silently mis-attribute work to the wrong commitment.
        area_numbers = [area.number for area in self.areas]
        if area_numbers != list(range(1, len(area_numbers) + 1)):
            raise ValueError(f"area numbers must run 1..{len(area_numbers)}, got {area_numbers}")
        item_numbers = [item.number for area in self.areas for item in area.items]
        if len(set(item_numbers)) != len(item_numbers):
            dupes = sorted({n for n in item_numbers if item_numbers.count(n) > 1})
            raise ValueError(f"duplicate item numbers: {dupes}")
        if sorted(item_numbers) != list(range(1, len(item_numbers) + 1)):
            raise ValueError(
                f"item numbers must be contiguous 1..{len(item_numbers)}, "
                f"got {sorted(item_numbers)}"
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        # Indexes are built once so lookups stay O(1) on the shared cached instance.
        self._areas_by_number = {area.number: area for area in self.areas}
        self._items_by_number = {item.number: item for area in self.areas for item in area.items}

    def item(self, number: int) -> StrategyItem:
        """Raises UnknownStrategyItem so bad references fail loudly rather than as None."""
        try:
            return self._items_by_number[number]
        except KeyError:
            raise UnknownStrategyItem(self.id, number) from None

    def area(self, number: int) -> StrategyArea:
        """Raises UnknownStrategyArea so bad references fail loudly rather than as None."""
        try:
            return self._areas_by_number[number]
        except KeyError:
            raise UnknownStrategyArea(self.id, number) from None

    def area_of_item(self, number: int) -> StrategyArea:
        """Lets callers group item-tagged records by area without walking the tree."""
        return self._areas_by_number[self.item(number).area_number]

    @property
    def items(self) -> tuple[StrategyItem, ...]:
        """Flattened in document order, which is the order the strategy is presented in."""
        return tuple(item for area in self.areas for item in area.items)

    @property
    def item_numbers(self) -> frozenset[int]:
        """For cheap membership checks when validating references from other services."""
        return frozenset(self._items_by_number)


def _data_dir() -> Traversable:
    return files("bali_common").joinpath(_DATA_DIR)


def available_strategies() -> list[str]:
    """Discovered from the data directory so a new strategy needs only a new JSON file."""
    data_dir = _data_dir()
    if not data_dir.is_dir():
        return []
    ids = (
        entry.name.removesuffix(".json")
        for entry in data_dir.iterdir()
        if entry.is_file() and entry.name.endswith(".json")
    )
    return sorted(i for i in ids if _STRATEGY_ID_RE.fullmatch(i))


@functools.cache
def load_strategy(strategy_id: str = DEFAULT_STRATEGY_ID) -> Strategy:
    """Cached because the catalogue is static reference data consulted on hot paths."""
    if strategy_id not in available_strategies():
        raise UnknownStrategy(strategy_id, available_strategies())
    resource = _data_dir().joinpath(f"{strategy_id}.json")
    raw = json.loads(resource.read_text(encoding="utf-8"))
    strategy = Strategy.model_validate(raw)
    if strategy.id != strategy_id:
        # The file name is the lookup key; a mismatch means the data was copied carelessly.
        raise ValueError(f"{strategy_id}.json declares id {strategy.id!r}")
    return strategy
