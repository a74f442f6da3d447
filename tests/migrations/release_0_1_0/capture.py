"""Writes release 0.1.0's schemas and rows, as its code made them, into this folder.

Run with the release's code first on the path, from an export of commit cfebaee, e.g.

    git archive cfebaee | tar -x -C /tmp/release-0.1.0
    PYTHONPATH=$(ls -d /tmp/release-0.1.0/libs/common/src /tmp/release-0.1.0/services/*/src \
        | paste -sd:) .venv/bin/python tests/migrations/release_0_1_0/capture.py

`<service>.<dialect>.sql`: the statements the release's `create_all` ran at start (its
tables and the audit triggers), for SQLite and PostgreSQL. `<service>.json`: each service
run on a fresh SQLite database (no broker: its events stay in the outbox), driven through
its HTTP API, every table dumped (timestamps as ISO 8601, bytes as base64). The upgrade tests
build databases from both and read the rows back through today's services.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
from bali_common.auth import Role, issue_dev_token
from bali_common.runtime import PLUMBING_TABLES
from sqlalchemy import MetaData, create_engine, create_mock_engine, select
from sqlmodel import SQLModel

HERE = Path(__file__).parent
NOWHERE = "127.0.0.1:9"  # no broker: every event stays in the outbox, unsent


def tokens(settings: Any, member: str | None, *roles: Role) -> dict[str, str]:
    token = issue_dev_token(
        settings, subject=f"capture-{member or 'admin'}", member_id=member, roles=list(roles)
    )
    return {"Authorization": f"Bearer {token}"}


def write_ddl(service: str, app: Any) -> None:
    """What the release's runtime ran at start: create_all of the plumbing and its tables."""
    tables = [*PLUMBING_TABLES, *app.state.runtime.definition.tables]
    for dialect in ("sqlite", "postgresql"):
        statements = ddl_of(tables, dialect)
        (HERE / f"{service}.{dialect}.sql").write_text("\n\n".join(statements) + "\n")


def ddl_of(tables: list[Any], dialect: str) -> list[str]:
    statements: list[str] = []

    def record(sql: Any, *_args: Any, **_kwargs: Any) -> None:
        statements.append(str(sql.compile(dialect=engine.dialect)).strip() + ";")

    engine = create_mock_engine(f"{dialect}://", record)
    SQLModel.metadata.create_all(engine, tables=tables, checkfirst=False)
    return statements


async def drive(app: Any, steps: Any) -> None:
    write_ddl(app.state.runtime.definition.name, app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://capture") as client:
            await steps(client)


async def activities(data_dir: Path) -> str:
    from bali_activities.app import create_app
    from bali_activities.settings import ActivitiesSettings

    settings = ActivitiesSettings(
        data_dir=data_dir, kafka_bootstrap_servers=NOWHERE, seed_reference_members=False
    )
    admin = tokens(settings, None, Role.admin)

    async def steps(client: httpx.AsyncClient) -> None:
        members = [
            {
                "member_id": "MY",
                "name": "Malaysia",
                "kind": "member_state",
                "focal_points": [
                    {
                        "name": "Focal Point MY",
                        "email": "focal.point@my.example",
                        "role": "focal_point",
                    }
                ],
            },
            {"member_id": "TH", "name": "Thailand", "kind": "member_state"},
            {
                "member_id": "IOM",
                "name": "International Organization for Migration",
                "kind": "international_organisation",
            },
        ]
        for number, body in enumerate(members):
            headers = {**admin, "Idempotency-Key": f"capture-member-{number}"}
            response = await client.post("/v1/members", json=body, headers=headers)
            assert response.status_code == 201, response.text
        activity = {
            "title": "Regional workshop on online scam operations",
            "description": "Two-day workshop for law enforcement and victim-support officers.",
            "items": [3, 12],
            "type": "workshop",
            "status": "completed",
            "participants": [
                {"member_id": "TH", "role": "co_lead"},
                {"member_id": "IOM", "role": "participant"},
            ],
            "planned_start": "2026-09-01",
            "planned_end": "2026-09-02",
            "actual_start": "2026-09-01",
            "actual_end": "2026-09-02",
            "countries": ["TH"],
            "outputs": [{"indicator": "officers trained", "value": 40, "by_sex": {"female": 18}}],
            "tags": ["Online scam operations", "digital literacy"],
            "documents": [{"title": "Report", "url": "https://docs.example/report.pdf"}],
        }
        response = await client.post(
            "/v1/activities", json=activity, headers=tokens(settings, "MY", Role.member)
        )
        assert response.status_code == 201, response.text

    await drive(create_app(settings), steps)
    return settings.resolved_database_url()


async def consultation(data_dir: Path) -> str:
    from bali_consultation.app import create_app
    from bali_consultation.models import ALERT_EXAMPLE
    from bali_consultation.settings import ConsultationSettings

    settings = ConsultationSettings(data_dir=data_dir, kafka_bootstrap_servers=NOWHERE)

    async def steps(client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/alerts", json=ALERT_EXAMPLE, headers=tokens(settings, "MY", Role.member)
        )
        assert response.status_code == 201, response.text
        alert_id = response.json()["id"]
        response = await client.post(
            f"/v1/alerts/{alert_id}/acknowledge",
            json={},
            headers=tokens(settings, "ID", Role.co_chair),
        )
        assert response.status_code == 200, response.text

    await drive(create_app(settings), steps)
    return settings.resolved_database_url()


async def notifications(data_dir: Path) -> str:
    from bali_notifications.app import create_app
    from bali_notifications.settings import NotificationsSettings

    settings = NotificationsSettings(data_dir=data_dir, kafka_bootstrap_servers=NOWHERE)

    async def steps(client: httpx.AsyncClient) -> None:
        body = {
            "name": "Daily digest of area 2 activities",
            "channel": "email",
            "email": "focal.point@my.example",
            "event_types": ["activity.*"],
            "area_numbers": [2],
            "digest": "daily",
        }
        response = await client.post(
            "/v1/subscriptions", json=body, headers=tokens(settings, "MY", Role.member)
        )
        assert response.status_code == 201, response.text

    await drive(create_app(settings), steps)
    return settings.resolved_database_url()


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(url.replace("+aiosqlite", ""))
    metadata = MetaData()
    metadata.reflect(engine)
    tables: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = connection.execute(select(table)).mappings().all()
            tables[table.name] = [{key: plain(value) for key, value in row.items()} for row in rows]
    engine.dispose()
    return tables


def plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


async def reporting(data_dir: Path) -> None:
    """Reporting consumes only: without a broker it writes nothing, so only its schema."""
    from bali_reporting.app import create_app
    from bali_reporting.settings import ReportingSettings

    write_ddl("reporting", create_app(ReportingSettings(data_dir=data_dir)))


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        await reporting(Path(directory))
    for capture in (activities, consultation, notifications):
        with tempfile.TemporaryDirectory() as directory:
            url = await capture(Path(directory))
            tables = dump(url)
        target = HERE / f"{capture.__name__}.json"
        target.write_text(json.dumps(tables, indent=1, sort_keys=True) + "\n")
        print(target, {name: len(rows) for name, rows in tables.items()})


if __name__ == "__main__":
    asyncio.run(main())
