"""Tests for the strategy catalogue reference data and its loader."""

from __future__ import annotations

from pathlib import Path

import pytest
from bali_common.catalogue import (
    DEFAULT_STRATEGY_ID,
    Strategy,
    UnknownStrategy,
    UnknownStrategyItem,
    available_strategies,
    load_strategy,
)

SEED = (
    Path(__file__).parents[3] / ".." / "shared" / "seed" / "adelaide-strategy-2023.txt"
).resolve()

ITEM_11_TEXT = (
    "Engage on emergency irregular migration situations through the Consultation "
    "Mechanism and Senior official Co-Chairs' Good Offices outreach."
)


@pytest.fixture
def strategy() -> Strategy:
    return load_strategy("adelaide-2023")


@pytest.fixture
def seed_text() -> str:
    if not SEED.is_file():
        pytest.skip(f"Adelaide strategy seed file not found at {SEED}; cannot cross-check text")
    return SEED.read_text(encoding="utf-8")


def test_default_strategy_is_adelaide(strategy: Strategy) -> None:
    assert DEFAULT_STRATEGY_ID == "adelaide-2023"
    assert load_strategy() == strategy
    assert strategy.id == "adelaide-2023"
    assert strategy.title == "2023 Adelaide Strategy for Cooperation"
    assert strategy.adopted.isoformat() == "2023-02-10"


def test_eight_areas_and_twenty_five_items(strategy: Strategy) -> None:
    assert [area.number for area in strategy.areas] == list(range(1, 9))
    assert [item.number for item in strategy.items] == list(range(1, 26))
    assert strategy.item_numbers == frozenset(range(1, 26))
    assert all(area.items for area in strategy.areas)


def test_area_names_are_the_clean_names(strategy: Strategy) -> None:
    assert [area.name for area in strategy.areas] == [
        "Law enforcement",
        "Stakeholder engagement",
        "Information sharing and public information campaigns",
        "Irregular Migration and Related Transnational Crime",
        "Border Management",
        "Victim Protection and Migration Management",
        "Returns and Reintegration",
        "Coordination and support",
    ]


def test_item_11_is_in_area_4_with_exact_text(strategy: Strategy) -> None:
    item = strategy.item(11)
    assert item.text == ITEM_11_TEXT
    assert item.area_number == 4
    area = strategy.area_of_item(11)
    assert area.number == 4
    assert area.name == "Irregular Migration and Related Transnational Crime"


def test_item_17_keeps_missing_full_stop(strategy: Strategy) -> None:
    assert strategy.item(17).text.endswith("trafficking in persons")


def test_every_item_text_is_verbatim_from_seed(strategy: Strategy, seed_text: str) -> None:
    seed_lines = set(seed_text.splitlines())
    for item in strategy.items:
        assert item.text in seed_text, f"item {item.number} text not found in seed"
        assert f"{item.number}. {item.text}" in seed_lines, f"item {item.number} misnumbered"


def test_area_names_appear_in_seed(strategy: Strategy, seed_text: str) -> None:
    for area in strategy.areas:
        assert f"- ({area.number}) {area.name}" in seed_text


@pytest.mark.parametrize(
    ("item_number", "area_number"),
    [(1, 1), (9, 3), (16, 5), (25, 8)],
)
def test_item_to_area_lookup(strategy: Strategy, item_number: int, area_number: int) -> None:
    assert strategy.area_of_item(item_number).number == area_number
    assert strategy.item(item_number).area_number == area_number
    assert strategy.item(item_number) in strategy.area(area_number).items


@pytest.mark.parametrize("item_number", [0, 26])
def test_unknown_item_raises(strategy: Strategy, item_number: int) -> None:
    with pytest.raises(UnknownStrategyItem, match=str(item_number)):
        strategy.item(item_number)
    with pytest.raises(UnknownStrategyItem):
        strategy.area_of_item(item_number)


def test_unknown_item_is_a_key_error(strategy: Strategy) -> None:
    with pytest.raises(KeyError):
        strategy.item(26)


def test_unknown_strategy_raises() -> None:
    with pytest.raises(UnknownStrategy, match="no-such-strategy"):
        load_strategy("no-such-strategy")
    with pytest.raises(UnknownStrategy):
        load_strategy("../adelaide-2023")


def test_available_strategies_lists_adelaide() -> None:
    assert "adelaide-2023" in available_strategies()


def test_strategy_is_immutable(strategy: Strategy) -> None:
    with pytest.raises(ValueError, match="frozen"):
        strategy.item(1).text = "changed"  # type: ignore[misc]
