"""The bare baseline of `bench/post.py`: validate an activity body, INSERT one row, answer 201.

A FastAPI app with one route that takes the activities service's own request model
(`ActivityCreate`, so validation costs the same) and inserts one row into one table through
the same kind of engine (`bali_common.db.create_engine`: aiosqlite, WAL, one pooled
connection), served the same way (`bali_common.server.serve`: uvicorn, uvloop, httptools,
one process, no access log). No token check, no ORM session, no outbox, no middleware.

`--same-writes` makes it the ceiling of `bench/post.py --ceiling`: the rows the service must
write for one new activity, in the service's own tables (their indexes and the audit table's
triggers included), each one Core INSERT with its values in one transaction: the activity,
its first version (the snapshot), the audit record and the outbox row (a CloudEvent's value
and headers). Still no token check, no rules, no middleware, no idempotency record: what is
left is what the guarantees themselves cost on this stack.
Run: `python bench/bare_app.py --port 8011 --database /tmp/bare.db [--same-writes]`.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from bali_activities.activities.models import STRATEGY, Activity, ActivityVersion
from bali_activities.activities.schemas import ActivityCreate
from bali_common.db import create_engine, table_of
from bali_common.http.audit import AuditRecord
from bali_common.messaging.outbox import OutboxMessage
from bali_common.server import serve
from bali_common.settings import CommonSettings
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Column, DateTime, MetaData, String, Table, Text, insert

metadata = MetaData()
activities = Table(
    "bare_activities",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


#: The service's tables the ceiling writes, built once as the service builds its statements.
SERVICE_TABLES = [
    table_of(model) for model in (Activity, ActivityVersion, AuditRecord, OutboxMessage)
]
INSERT_ACTIVITY, INSERT_VERSION, INSERT_AUDIT, INSERT_OUTBOX = (
    insert(table) for table in SERVICE_TABLES
)


def create_app(database: Path, *, same_writes: bool = False) -> FastAPI:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            for table in SERVICE_TABLES:
                await connection.run_sync(table.create, checkfirst=True)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if same_writes:

        @app.post("/v1/activities", status_code=201)
        async def create_with_the_service_writes(body: ActivityCreate) -> JSONResponse:
            now = datetime.now(UTC)
            data = body.model_dump(mode="json")
            # The service takes the lead member from the token: bench/post.py's posts as ID.
            data["lead_member"] = data["lead_member"] or "ID"
            activity_id = str(uuid.uuid4())
            row = {**data, "id": activity_id, "version": 1, "strategy_id": STRATEGY.id}
            for name in ("planned_start", "planned_end", "actual_start", "actual_end"):
                row[name] = date.fromisoformat(data[name]) if data[name] else None
            row.update(
                areas=sorted({STRATEGY.item(n).area_number for n in data["items"]}),
                members=sorted(
                    {data["lead_member"], *(p["member_id"] for p in data["participants"])}
                ),
                window_start=row["actual_start"] or row["planned_start"],
                window_end=row["actual_end"]
                or row["planned_end"]
                or row["actual_start"]
                or row["planned_start"],
                created_at=now,
                updated_at=now,
                deleted=False,
            )
            snapshot = {**data, "id": activity_id, "version": 1}
            event_id = str(uuid.uuid4())
            async with engine.begin() as connection:
                await connection.execute(INSERT_ACTIVITY, row)
                await connection.execute(
                    INSERT_VERSION,
                    {
                        "activity_id": activity_id,
                        "version": 1,
                        "action": "created",
                        "snapshot": snapshot,
                        "changes": {},
                        "actor_subject": "bench",
                        "actor_member": data["lead_member"],
                        "at": now,
                    },
                )
                await connection.execute(
                    INSERT_AUDIT,
                    {
                        "at": now,
                        "actor_subject": "bench",
                        "actor_member": data["lead_member"],
                        "actor_roles": "member",
                        "action": "activity.create",
                        "resource_type": "activity",
                        "resource_id": activity_id,
                        "outcome": "success",
                        "details": json.dumps({"version": 1}),
                    },
                )
                await connection.execute(
                    INSERT_OUTBOX,
                    {
                        "event_id": event_id,
                        "topic": "activities",
                        "key": activity_id,
                        "event_type": "activity.created",
                        "headers": json.dumps([["ce_id", event_id], ["ce_subject", activity_id]]),
                        "value": json.dumps({"activity": snapshot}).encode(),
                        "created_at": now,
                        "attempts": 0,
                    },
                )
            return JSONResponse(snapshot, status_code=201)

        return app

    @app.post("/v1/activities", status_code=201)
    async def create_activity(body: ActivityCreate) -> JSONResponse:
        row = {"id": str(uuid.uuid4()), **body.model_dump(mode="json")}
        async with engine.begin() as connection:
            await connection.execute(
                insert(activities).values(
                    id=row["id"],
                    title=body.title,
                    body=json.dumps(row),
                    created_at=datetime.now(UTC),
                )
            )
        return JSONResponse(row, status_code=201)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--log-level", default="INFO", help="as the services' default")
    parser.add_argument(
        "--same-writes", action="store_true", help="the service's rows, not one (see above)"
    )
    args = parser.parse_args()
    settings = CommonSettings(
        service_name="bare", host=args.host, port=args.port, log_level=args.log_level
    )
    serve(create_app(args.database, same_writes=args.same_writes), settings)


if __name__ == "__main__":
    main()
