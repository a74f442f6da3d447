"""Alerts' audience kept for the visibility rule; subscriptions serving the co-chairs

Online: yes. The release before ignores the new table and columns; existing subscriptions get
`for_co_chairs` false (a co-chair re-sets the target to serve the co-chairs again), and
existing alert states learn their audience when the service starts. SQLite rebuilds the two
tables it alters, holding the write lock while it copies them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:44:31.777267
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_state_affected_members",
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.PrimaryKeyConstraint(
            "alert_id", "member_id", name=op.f("alert_state_affected_members_pkey")
        ),
    )
    with op.batch_alter_table("alert_state_affected_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_state_affected_members_member_id"), ["member_id"], unique=False
        )

    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sensitivity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "raised_by_member", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True
            )
        )
        batch_op.create_index(
            batch_op.f("ix_alert_states_raised_by_member"), ["raised_by_member"], unique=False
        )

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        # Existing rows: no subscription serves the co-chairs until a co-chair sets its target.
        batch_op.add_column(
            sa.Column("for_co_chairs", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("for_co_chairs")

    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_states_raised_by_member"))
        batch_op.drop_column("raised_by_member")
        batch_op.drop_column("sensitivity")

    with op.batch_alter_table("alert_state_affected_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_state_affected_members_member_id"))

    op.drop_table("alert_state_affected_members")
