"""Alembic environment of the consultation database: the plumbing tables and the service's own."""

from bali_common.migrations import run_environment
from bali_common.runtime import PLUMBING_MODELS

from bali_consultation.app import MODELS

run_environment([*PLUMBING_MODELS, *MODELS])
