"""The consultation database's Alembic history: `python -m bali_consultation migrate` runs it."""

from pathlib import Path

DIRECTORY = Path(__file__).parent
