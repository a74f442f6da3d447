"""The activities database's Alembic history: `python -m bali_activities migrate` runs it."""

from pathlib import Path

DIRECTORY = Path(__file__).parent
