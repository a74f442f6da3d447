"""Alembic environment of the activities database: the plumbing tables and the service's own."""

from bali_common.migrations import run_environment
from bali_common.runtime import PLUMBING_MODELS

from bali_activities.app import MODELS

run_environment([*PLUMBING_MODELS, *MODELS])
