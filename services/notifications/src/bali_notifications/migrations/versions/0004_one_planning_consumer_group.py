"""One consumer group plans deliveries from the three streams

Online: no. The release before consumes in three groups (`notifications.members`, `.alerts`,
`.activities`) and records their inbox ids under those names; this one consumes in one group,
`notifications.planning`, which starts on the broker without committed offsets and so reads
the topics from their earliest offsets. The ids the three groups applied move to the new group
here, so that what the broker still holds is skipped rather than planned again: stop the
release before, run this, then start this release.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 01:10:23.034772
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMER_GROUPS = ("notifications.members", "notifications.alerts", "notifications.activities")
GROUP = "notifications.planning"
#: The tables that record a consumer group's name per event.
TABLES = [
    sa.table(name, sa.column("consumer_group"), sa.column("topic"))
    for name in ("inbox_entries", "dead_letters")
]


def upgrade() -> None:
    for table in TABLES:
        op.execute(
            sa.update(table)
            .where(table.c.consumer_group.in_(FORMER_GROUPS))
            .values(consumer_group=GROUP)
        )


def downgrade() -> None:
    # Each id goes back to the group of its stream.
    for former in FORMER_GROUPS:
        topic = f"bali.{former.rsplit('.', 1)[1]}"
        for table in TABLES:
            op.execute(
                sa.update(table)
                .where(table.c.consumer_group == GROUP, table.c.topic == topic)
                .values(consumer_group=former)
            )
