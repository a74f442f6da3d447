"""The reporting database's Alembic history: `python -m bali_reporting migrate` runs it."""

from pathlib import Path

DIRECTORY = Path(__file__).parent
