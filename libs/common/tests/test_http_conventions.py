"""Idempotency-Key, ETag / If-Match, cursor pagination, audit and problems over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import httpx
import pytest
from bali_common.auth import CurrentPrincipal, Role
from bali_common.deps import SessionDep
from bali_common.http.audit import AuditRecord, record_audit
from bali_common.http.concurrency import IfMatchHeader, check_version, set_etag
from bali_common.http.idempotency import IdempotencyRecord, IdempotentWriteDep, WriteOutcome
from bali_common.http.pagination import Page, PageRequestDep, encode_cursor, keyset_page
from bali_common.problems import ProblemError
from bali_common.runtime import ServiceDefinition, build_app
from bali_common.settings import CommonSettings
from bali_devkit.testing.plugin import SettingsFactory, bearer, running
from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError
from sqlmodel import Field, SQLModel, col, func, select, text
from sqlmodel.ext.asyncio.session import AsyncSession


class Note(SQLModel, table=True):
    __tablename__ = "notes"
    id: int | None = Field(default=None, primary_key=True)
    owner: str
    body: str
    version: int = 1


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(max_length=50)


class NotePublic(BaseModel):
    id: int
    owner: str
    body: str
    version: int


def create_notes_app(settings: CommonSettings) -> FastAPI:
    router = APIRouter(prefix="/v1/notes")

    @router.post("", status_code=201)
    async def create(
        note: NoteIn,
        principal: CurrentPrincipal,
        write: IdempotentWriteDep,
    ) -> Response:
        async def operation(session: AsyncSession) -> WriteOutcome:
            row = Note(owner=principal.member_id or "-", body=note.body)
            session.add(row)
            await session.flush()
            record_audit(
                session,
                principal=principal,
                action="note.create",
                resource_type="note",
                resource_id=str(row.id),
            )
            await session.commit()
            await asyncio.sleep(0.05)
            return WriteOutcome(
                status=201, body=NotePublic.model_validate(row, from_attributes=True)
            )

        return await write.run(principal=principal, request_body=note, operation=operation)

    @router.patch("/{note_id}")
    async def update(
        note_id: int,
        note: NoteIn,
        principal: CurrentPrincipal,
        session: SessionDep,
        response: Response,
        if_match: IfMatchHeader = None,
    ) -> NotePublic:
        row = await session.get(Note, note_id, with_for_update=True)
        if row is None or row.owner != principal.member_id:
            raise ProblemError(404, "Not Found")
        check_version(row.version, if_match)
        row.body = note.body
        row.version += 1
        session.add(row)
        await session.commit()
        set_etag(response, row.version)
        return NotePublic.model_validate(row, from_attributes=True)

    @router.get("")
    async def list_notes(
        principal: CurrentPrincipal,
        session: SessionDep,
        page: PageRequestDep,
        contains: Annotated[str | None, Query(max_length=20)] = None,
    ) -> Page[NotePublic]:
        query = select(Note).where(Note.owner == principal.member_id)
        if contains:
            query = query.where(col(Note.body).contains(contains))
        listed = await keyset_page(session, query, page=page, order_by=[col(Note.id)])
        return Page[NotePublic](
            items=[NotePublic.model_validate(r, from_attributes=True) for r in listed.rows],
            next_cursor=listed.next_cursor,
        )

    @router.get("/boom")
    async def boom(_principal: CurrentPrincipal) -> None:
        raise RuntimeError("secret internal detail")

    return build_app(
        ServiceDefinition(
            name="notes",
            title="Notes",
            description="HTTP conventions probe",
            models=[Note, IdempotencyRecord, AuditRecord],
            routers=[router],
        ),
        settings,
    )


@pytest.fixture
async def notes(make_settings: SettingsFactory) -> Any:
    settings = await make_settings(CommonSettings, service_name="notes", max_request_bytes=10_000)
    app = create_notes_app(settings)
    async with running(app) as client:
        yield client, settings, app


async def _count_notes(app: FastAPI) -> int:
    async with app.state.runtime.sessions() as session:
        return int((await session.exec(select(func.count()).select_from(Note))).one())


async def test_same_idempotency_key_and_body_creates_once_and_replays_the_response(
    notes: Any,
) -> None:
    client, settings, app = notes
    headers = bearer(settings, member="AU") | {"Idempotency-Key": "k-1"}
    responses = [
        await client.post("/v1/notes", json={"body": "x"}, headers=headers) for _ in range(10)
    ]
    assert {r.status_code for r in responses} == {201}
    assert len({r.text for r in responses}) == 1
    assert responses[1].headers["Idempotent-Replayed"] == "true"
    assert await _count_notes(app) == 1


async def test_concurrent_requests_with_one_key_create_one_and_others_conflict_or_replay(
    notes: Any,
) -> None:
    client, settings, app = notes
    headers = bearer(settings, member="AU") | {"Idempotency-Key": "k-2"}
    responses = await asyncio.gather(
        *[client.post("/v1/notes", json={"body": "y"}, headers=headers) for _ in range(10)]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    assert all(
        r.headers["content-type"] == "application/problem+json"
        for r in responses
        if r.status_code == 409
    )
    assert await _count_notes(app) == 1


async def test_same_key_with_another_body_is_refused_and_other_tenant_key_is_separate(
    notes: Any,
) -> None:
    client, settings, app = notes
    au = bearer(settings, member="AU") | {"Idempotency-Key": "k-3"}
    nz = bearer(settings, member="NZ") | {"Idempotency-Key": "k-3"}
    first = await client.post("/v1/notes", json={"body": "a"}, headers=au)
    other_body = await client.post("/v1/notes", json={"body": "b"}, headers=au)
    other_tenant = await client.post("/v1/notes", json={"body": "a"}, headers=nz)
    assert first.status_code == 201
    assert other_body.status_code == 422
    assert other_tenant.status_code == 201
    assert other_tenant.json()["owner"] == "NZ"
    assert await _count_notes(app) == 2


async def test_twenty_concurrent_updates_with_one_etag_have_exactly_one_winner(notes: Any) -> None:
    client, settings, _ = notes
    auth = bearer(settings, member="AU")
    created = (await client.post("/v1/notes", json={"body": "v1"}, headers=auth)).json()
    results = await asyncio.gather(
        *[
            client.patch(
                f"/v1/notes/{created['id']}",
                json={"body": f"v2-{n}"},
                headers=auth | {"If-Match": '"v1"'},
            )
            for n in range(20)
        ]
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [412] * 19
    missing = await client.patch(f"/v1/notes/{created['id']}", json={"body": "z"}, headers=auth)
    assert missing.status_code == 428
    unconditional = await client.patch(
        f"/v1/notes/{created['id']}", json={"body": "z"}, headers=auth | {"If-Match": "*"}
    )
    assert unconditional.status_code == 200
    assert unconditional.headers["ETag"] == '"v3"'


async def test_pagination_walks_every_item_once_and_caps_the_page_size(notes: Any) -> None:
    client, settings, _ = notes
    auth = bearer(settings, member="ID")
    for n in range(7):
        await client.post("/v1/notes", json={"body": f"n{n}"}, headers=auth)
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"page_size": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/notes", params=params, headers=auth)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert len(seen) == 7 == len(set(seen))
    huge = await client.get("/v1/notes", params={"page_size": 1_000_000}, headers=auth)
    assert huge.status_code == 422
    assert huge.headers["content-type"] == "application/problem+json"
    assert huge.json()["errors"][0]["field"] == "query.page_size"
    bad_cursor = await client.get("/v1/notes", params={"cursor": "%%%"}, headers=auth)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "query.cursor"


async def test_errors_are_problem_documents_without_internals(notes: Any) -> None:
    client, settings, _ = notes
    auth = bearer(settings, member="AU")
    invalid = await client.post("/v1/notes", json={"body": "x" * 51, "owner": "NZ"}, headers=auth)
    assert invalid.status_code == 422
    fields = {e["field"] for e in invalid.json()["errors"]}
    assert fields == {"body.body", "body.owner"}
    assert "body.body" in invalid.json()["detail"]
    unknown = await client.get("/v1/nowhere", headers=auth)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    wrong_method = await client.delete("/v1/notes", headers=auth)
    assert wrong_method.status_code == 405
    too_big = await client.post("/v1/notes", content=b"{" + b" " * 20_000 + b"}", headers=auth)
    assert too_big.status_code == 413
    unauthenticated = await client.get("/v1/notes")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")


async def test_unexpected_error_is_a_500_problem_without_traceback(
    make_settings: SettingsFactory,
) -> None:
    settings = await make_settings(CommonSettings, service_name="notes")
    app = create_notes_app(settings)
    async with running(app):
        # Under uvicorn the server-error middleware answers and logs; over ASGI it would
        # also re-raise into the test, so that is switched off here.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/v1/notes/boom", headers=bearer(settings, member="AU"))
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


async def test_audit_rows_cannot_be_updated_or_deleted(notes: Any) -> None:
    client, settings, app = notes
    await client.post(
        "/v1/notes",
        json={"body": "audited"},
        headers=bearer(settings, member="AU", roles=[Role.member]),
    )
    async with app.state.runtime.sessions() as session:
        row = (await session.exec(select(AuditRecord))).one()
        assert row.action == "note.create"
        assert row.actor_member == "AU"
        assert row.trace_id is not None
    for statement in ("UPDATE audit_records SET outcome = 'x'", "DELETE FROM audit_records"):
        async with app.state.runtime.sessions() as session, session.begin():
            with pytest.raises(DBAPIError):
                await session.exec(text(statement))  # type: ignore[call-overload]


async def test_health_readiness_and_metrics(notes: Any) -> None:
    client, _, _ = notes
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    metrics = (await client.get("/metrics")).text
    assert "bali_outbox_backlog" in metrics
    assert "bali_http_requests_total" in metrics


@pytest.mark.parametrize(
    "sort_key",
    [
        [2**64],
        [-(2**70)],
        [True],
        ["1"],
        [1.5],
        [1, 2],
        [],
        [None],
    ],
)
async def test_crafted_cursors_are_refused_naming_the_field(
    notes: Any, sort_key: list[Any]
) -> None:
    client, settings, _ = notes
    listed = await client.get(
        "/v1/notes",
        params={"cursor": encode_cursor(sort_key)},
        headers=bearer(settings, member="AU"),
    )
    assert listed.status_code == 422, listed.text
    assert listed.json()["errors"][0]["field"] == "query.cursor"
