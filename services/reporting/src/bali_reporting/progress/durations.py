"""Durations as people read them ("4 min", "2 h 5 min", "3 d 4 h"), for pages and documents."""

from __future__ import annotations


def human_duration(seconds: int | None) -> str:
    """A blank dash for a step not reached; otherwise the two largest units."""
    if seconds is None:
        return "—"
    seconds = max(0, seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"
