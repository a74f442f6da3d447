"""List filters read the activities' JSON columns; the index table goes.

Online: no. The release before writes a row per list value into activity_index, which this
drops, and inserts activities without the new NOT NULL column members: its writes of
activities fail once this has run, so stop it first (its reads keep working). On PostgreSQL
the columns items, countries and tags are rewritten from JSON to JSONB and four GIN indexes
are built, holding an exclusive lock on activities meanwhile (reads wait too), about as long
as reading the table a few times. On SQLite activities is copied once to add the column.

The member ids of each activity's index rows move into members, with its lead and
participants (the same ids when the index was current), sorted. The other index rows repeat
what items, countries and tags hold. The downgrade builds the index rows again from those
columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 02:22:30.269276
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCHABLE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: Columns JSONB on PostgreSQL from now on, each with a GIN index; members is new.
RETYPED = ("items", "countries", "tags")
GIN_INDEXED = ("items", "members", "countries", "tags")

activities = sa.table(
    "activities",
    sa.column("id", sa.String),
    sa.column("lead_member", sa.String),
    sa.column("participants", sa.JSON),
    sa.column("items", SEARCHABLE),
    sa.column("countries", SEARCHABLE),
    sa.column("tags", SEARCHABLE),
    sa.column("members", SEARCHABLE),
)
activity_index = sa.table(
    "activity_index",
    sa.column("activity_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("value", sa.String),
)


def _on_postgresql() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("members", SEARCHABLE, nullable=True))

    indexed: dict[str, set[str]] = defaultdict(set)
    member_rows = bind.execute(
        sa.select(activity_index.c.activity_id, activity_index.c.value).where(
            activity_index.c.kind == "member"
        )
    )
    for activity_id, member_id in member_rows:
        indexed[activity_id].add(member_id)
    rows = bind.execute(
        sa.select(activities.c.id, activities.c.lead_member, activities.c.participants)
    ).all()
    if rows:
        bind.execute(
            activities.update()
            .where(activities.c.id == sa.bindparam("activity_id"))
            .values(members=sa.bindparam("involved", type_=SEARCHABLE)),
            [
                {
                    "activity_id": activity_id,
                    "involved": sorted(
                        {
                            *indexed[activity_id],
                            lead,
                            *(p["member_id"] for p in participants or []),
                        }
                    ),
                }
                for activity_id, lead, participants in rows
            ],
        )

    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.alter_column("members", existing_type=SEARCHABLE, nullable=False)
    if _on_postgresql():
        for column in RETYPED:
            op.alter_column(
                "activities",
                column,
                existing_type=sa.JSON(),
                type_=postgresql.JSONB(),
                existing_nullable=False,
                postgresql_using=f"{column}::jsonb",
            )
        for column in GIN_INDEXED:
            op.create_index(
                f"ix_activities_{column}", "activities", [column], postgresql_using="gin"
            )

    with op.batch_alter_table("activity_index", schema=None) as batch_op:
        batch_op.drop_index("ix_activity_index_lookup")
    op.drop_table("activity_index")


def downgrade() -> None:
    op.create_table(
        "activity_index",
        sa.Column("activity_id", sa.VARCHAR(length=36), nullable=False),
        sa.Column("kind", sa.VARCHAR(length=10), nullable=False),
        sa.Column("value", sa.VARCHAR(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"], ["activities.id"], name=op.f("activity_index_activity_id_fkey")
        ),
        sa.PrimaryKeyConstraint("activity_id", "kind", "value", name=op.f("activity_index_pkey")),
    )
    with op.batch_alter_table("activity_index", schema=None) as batch_op:
        batch_op.create_index("ix_activity_index_lookup", ["kind", "value"], unique=False)

    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            activities.c.id,
            activities.c["items"],
            activities.c.members,
            activities.c.tags,
            activities.c.countries,
        )
    )
    entries: list[dict[str, Any]] = []
    for activity_id, items, members, tags, countries in rows:
        values = {("item", str(number)) for number in items}
        values |= {("member", member_id) for member_id in members}
        values |= {("tag", tag) for tag in tags}
        values |= {("country", country) for country in countries}
        entries.extend(
            {"activity_id": activity_id, "kind": kind, "value": value}
            for kind, value in sorted(values)
        )
    if entries:
        bind.execute(activity_index.insert(), entries)

    if _on_postgresql():
        for column in GIN_INDEXED:
            op.drop_index(f"ix_activities_{column}", table_name="activities")
        for column in RETYPED:
            op.alter_column(
                "activities",
                column,
                existing_type=postgresql.JSONB(),
                type_=sa.JSON(),
                existing_nullable=False,
                postgresql_using=f"{column}::json",
            )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_column("members")
