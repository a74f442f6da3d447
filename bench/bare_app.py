"""The bare baseline of `bench/post.py`: validate an activity body, INSERT one row, answer 201.

A FastAPI app with one route that takes the activities service's own request model
(`ActivityCreate`, so validation costs the same) and inserts one row into one table through
the same kind of engine (`bali_common.db.create_engine`: aiosqlite, WAL, one pooled
connection), served the same way (`bali_common.server.serve`: uvicorn, uvloop, httptools,
one process, no access log). No token check, no ORM session, no outbox, no middleware.
Run: `python bench/bare_app.py --port 8011 --database /tmp/bare.db`.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from bali_activities.activities.schemas import ActivityCreate
from bali_common.db import create_engine
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


def create_app(database: Path) -> FastAPI:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

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
    args = parser.parse_args()
    settings = CommonSettings(
        service_name="bare", host=args.host, port=args.port, log_level=args.log_level
    )
    serve(create_app(args.database), settings)


if __name__ == "__main__":
    main()
