"""The notifications database's Alembic history: `python -m bali_notifications migrate` runs it."""

from pathlib import Path

DIRECTORY = Path(__file__).parent
