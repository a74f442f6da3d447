"""The reporting projections and the rebuild's tables

Online: yes: new tables only, and the release before keeps its own. The projections (coverage,
trends, indicators, the alert board, response times, delivery and pipeline health, follow-up)
are filled by the new consumer group `reporting.projections`, which starts from the earliest
offset the topics still hold, so the event tally the old group `reporting.pipeline` kept is
emptied here rather than counted twice.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:47:18.246481
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
        "alert_audience",
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "member_id", name=op.f("alert_audience_pkey")),
    )
    with op.batch_alter_table("alert_audience", schema=None) as batch_op:
        batch_op.create_index("ix_alert_audience_member", ["member_id", "alert_id"], unique=False)

    op.create_table(
        "alert_board",
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("urgency", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("situation_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("sensitivity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("raised_by_member", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("affected_members", sa.JSON(), nullable=False),
        sa.Column("people_affected", sa.Integer(), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("convened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_step", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("last_step_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_step_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("alert_board_pkey")),
    )
    with op.batch_alter_table("alert_board", schema=None) as batch_op:
        batch_op.create_index("ix_alert_board_raised", ["raised_at", "alert_id"], unique=False)

    op.create_table(
        "alert_response_times",
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("quarter", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("to_acknowledge_s", sa.Integer(), nullable=True),
        sa.Column("to_convene_s", sa.Integer(), nullable=True),
        sa.Column("to_resolve_s", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("alert_response_times_pkey")),
    )
    with op.batch_alter_table("alert_response_times", schema=None) as batch_op:
        batch_op.create_index("ix_alert_response_raised", ["raised_at"], unique=False)

    op.create_table(
        "coverage_heads",
        sa.Column("activity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("contribution", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("coverage_heads_pkey")),
    )
    op.create_table(
        "coverage_tallies",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("item_number", sa.Integer(), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "year", "item_number", "member_id", "role", "status", name=op.f("coverage_tallies_pkey")
        ),
    )
    with op.batch_alter_table("coverage_tallies", schema=None) as batch_op:
        batch_op.create_index("ix_coverage_tallies_n", ["n"], unique=False)

    op.create_table(
        "delivery_health",
        sa.Column("delivery_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=True),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column(
            "source_event_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False
        ),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exhausted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exhausted_reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("operator_warning", sa.Boolean(), nullable=False),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("delivery_health_pkey")),
    )
    with op.batch_alter_table("delivery_health", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_health_alert", ["alert_id"], unique=False)
        batch_op.create_index("ix_delivery_health_last", ["last_at", "delivery_id"], unique=False)

    op.create_table(
        "follow_up_activities",
        sa.Column("activity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("alert_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("lead_member", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("items_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("members_key", sqlmodel.sql.sqltypes.AutoString(length=3000), nullable=False),
        sa.Column("starts_on", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("follow_up_activities_pkey")),
    )
    with op.batch_alter_table("follow_up_activities", schema=None) as batch_op:
        batch_op.create_index("ix_follow_up_alert", ["alert_id"], unique=False)
        batch_op.create_index("ix_follow_up_order", ["starts_on", "activity_id"], unique=False)

    op.create_table(
        "indicator_age_tallies",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("indicator", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("item_number", sa.Integer(), nullable=False),
        sa.Column("age_group", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "year",
            "indicator",
            "unit",
            "item_number",
            "age_group",
            name=op.f("indicator_age_tallies_pkey"),
        ),
    )
    with op.batch_alter_table("indicator_age_tallies", schema=None) as batch_op:
        batch_op.create_index("ix_indicator_age_tallies_n", ["n"], unique=False)

    op.create_table(
        "indicator_heads",
        sa.Column("activity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("contribution", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("indicator_heads_pkey")),
    )
    op.create_table(
        "indicator_tallies",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("indicator", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("item_number", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("with_sex", sa.Integer(), nullable=False),
        sa.Column("female", sa.BigInteger(), nullable=False),
        sa.Column("male", sa.BigInteger(), nullable=False),
        sa.Column("other", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "year", "indicator", "unit", "item_number", name=op.f("indicator_tallies_pkey")
        ),
    )
    with op.batch_alter_table("indicator_tallies", schema=None) as batch_op:
        batch_op.create_index("ix_indicator_tallies_n", ["n"], unique=False)

    op.create_table(
        "rebuild_runs",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events_read", sa.Integer(), nullable=False),
        sa.Column("events_applied", sa.Integer(), nullable=False),
        sa.Column("events_target", sa.Integer(), nullable=True),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("rebuild_runs_pkey")),
    )
    op.create_table(
        "reporting_members",
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("is_co_chair", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("reporting_members_pkey")),
    )
    op.create_table(
        "reporting_replicas",
        sa.Column("replica_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_for", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.PrimaryKeyConstraint("replica_id", name=op.f("reporting_replicas_pkey")),
    )
    op.create_table(
        "trend_heads",
        sa.Column("activity_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("contribution", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("activity_id", name=op.f("trend_heads_pkey")),
    )
    op.create_table(
        "trend_tallies",
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("area_number", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "month", "area_number", "status", "type", name=op.f("trend_tallies_pkey")
        ),
    )
    with op.batch_alter_table("trend_tallies", schema=None) as batch_op:
        batch_op.create_index("ix_trend_tallies_n", ["n"], unique=False)
    op.execute("DELETE FROM event_tallies")


def downgrade() -> None:
    with op.batch_alter_table("trend_tallies", schema=None) as batch_op:
        batch_op.drop_index("ix_trend_tallies_n")

    op.drop_table("trend_tallies")
    op.drop_table("trend_heads")
    op.drop_table("reporting_replicas")
    op.drop_table("reporting_members")
    op.drop_table("rebuild_runs")
    with op.batch_alter_table("indicator_tallies", schema=None) as batch_op:
        batch_op.drop_index("ix_indicator_tallies_n")

    op.drop_table("indicator_tallies")
    op.drop_table("indicator_heads")
    with op.batch_alter_table("indicator_age_tallies", schema=None) as batch_op:
        batch_op.drop_index("ix_indicator_age_tallies_n")

    op.drop_table("indicator_age_tallies")
    with op.batch_alter_table("follow_up_activities", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_up_order")
        batch_op.drop_index("ix_follow_up_alert")

    op.drop_table("follow_up_activities")
    with op.batch_alter_table("delivery_health", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_health_last")
        batch_op.drop_index("ix_delivery_health_alert")

    op.drop_table("delivery_health")
    with op.batch_alter_table("coverage_tallies", schema=None) as batch_op:
        batch_op.drop_index("ix_coverage_tallies_n")

    op.drop_table("coverage_tallies")
    op.drop_table("coverage_heads")
    with op.batch_alter_table("alert_response_times", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_response_raised")

    op.drop_table("alert_response_times")
    with op.batch_alter_table("alert_board", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_board_raised")

    op.drop_table("alert_board")
    with op.batch_alter_table("alert_audience", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_audience_member")

    op.drop_table("alert_audience")
