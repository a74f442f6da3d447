"""Webhook signing secrets at rest: sealed in every table, absent from logs, keys rotated."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from bali_common.db import is_sqlite, utcnow
from bali_common.settings import DEV_LINK_SECRET
from bali_notifications import secrets_at_rest
from bali_notifications.secrets_at_rest import SecretBox, UnreadableSecret
from bali_notifications.settings import NotificationsSettings
from bali_notifications.signing import new_secret
from bali_notifications.subscriptions.models import Subscription
from cryptography.fernet import Fernet
from notification_harness import Harness, ServiceStarter, alert_raised, reload, unsubscribe
from notification_receivers import WebhookReceiver
from pydantic import ValidationError
from sqlalchemy import Connection, MetaData, select

FIRST_KEY = Fernet.generate_key().decode()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("secrets", webhook_secret_keys=FIRST_KEY) as harness:
        yield harness


def forms_of(secret: str) -> list[str]:
    """The secret as sent to its owner, and the key inside it in the encodings it could take."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return [secret, secret.removeprefix("whsec_"), base64.urlsafe_b64encode(key).decode()]


async def everything_stored(harness: Harness) -> str:
    """Every row of every table of the service's database, as text (and the SQLite files)."""

    def dump(connection: Connection) -> list[str]:
        tables = MetaData()
        tables.reflect(connection)
        return [
            repr(row)
            for table in tables.sorted_tables
            for row in connection.execute(select(table)).all()
        ]

    async with harness.runtime.engine.connect() as connection:
        stored = "\n".join(await connection.run_sync(dump))
    url = harness.settings.resolved_database_url()
    if is_sqlite(url):
        database = Path(url.split("///", 1)[1])
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                stored += path.read_bytes().decode("latin-1")
    return stored


async def test_no_table_and_no_log_line_holds_a_webhook_secret(
    harness: Harness, webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Created (and replayed for its Idempotency-Key), rotated, used to sign: the secrets
    reach their owner and the receiver's checks, and nothing the service stores or logs."""
    caplog.set_level(logging.DEBUG)
    endpoint = webhook_receiver.endpoint()
    request = {"name": "hook", "channel": "webhook", "url": endpoint.url, "member_ids": ["PH"]}
    headers = {**harness.tokens("PH"), "Idempotency-Key": "create-hook-1"}
    created = await harness.client.post("/v1/subscriptions", json=request, headers=headers)
    assert created.status_code == 201, created.text
    replayed = await harness.client.post("/v1/subscriptions", json=request, headers=headers)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == created.json(), "a retried creation shows the secret again"
    subscription_id, first = created.json()["id"], created.json()["secret"]
    rotated = await harness.client.post(
        f"/v1/subscriptions/{subscription_id}/rotate-secret", headers=harness.tokens("PH")
    )
    second = rotated.json()["secret"]
    endpoint.secrets += [first, second]
    payload = alert_raised(raised_by="PH", affected=[])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    await harness.planned(event, 6)
    await harness.dispatch()
    [hook] = endpoint.requests
    assert hook.verified
    assert len(hook.headers["webhook-signature"].split(" ")) == 2, "both sign in the overlap"

    stored = await everything_stored(harness)
    assert subscription_id in stored
    assert "create-hook-1" in stored, "the idempotency record is read too"
    for secret in (first, second):
        for form in forms_of(secret):
            assert form not in stored
            assert form not in caplog.text
    await unsubscribe(harness, "PH", subscription_id)


async def test_a_new_key_reseals_every_secret_and_the_old_key_can_then_go(
    harness: Harness,
    webhook_receiver: WebhookReceiver,
) -> None:
    """The documented rotation: the new key first, the old one after it; the command reseals
    (a secret stored in plain text before sealing existed too); without the old key, every
    secret still opens and signs."""
    endpoint = webhook_receiver.endpoint()
    created = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "hook", "channel": "webhook", "url": endpoint.url, "member_ids": ["PH"]},
        headers=harness.tokens("PH"),
    )
    subscription_id = created.json()["id"]
    endpoint.secrets.append(created.json()["secret"])
    legacy = new_secret()
    async with harness.runtime.sessions() as session:
        plain = Subscription(
            created_by="before-sealing",
            member_id="MY",
            name="kept in plain text",
            channel="webhook",
            url=webhook_receiver.endpoint().url,
            secrets=[{"secret": legacy, "expires_at": None}],
            enabled=False,
        )
        session.add(plain)
        await session.commit()
    assert legacy in await everything_stored(harness)

    second_key = Fernet.generate_key().decode()
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bali_notifications",
        "reseal-webhook-secrets",
        stdout=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "BALI_DATABASE_URL": harness.settings.resolved_database_url(),
            "BALI_DATA_DIR": str(harness.settings.data_dir),
            "BALI_WEBHOOK_SECRET_KEYS": f"{second_key},{FIRST_KEY}",
        },
    )
    output, _ = await command.communicate()
    assert command.returncode == 0
    assert "1 sealed from plain text, 1 moved to the newest key" in output.decode()
    assert legacy not in await everything_stored(harness)

    only_new = SecretBox([second_key.encode()])
    only_old = SecretBox([FIRST_KEY.encode()])
    async with harness.runtime.sessions() as session:
        for row_id in (subscription_id, plain.id):
            row = await session.get(Subscription, row_id)
            assert row is not None
            [entry] = row.secrets
            assert only_new.is_current(entry)
            with pytest.raises(UnreadableSecret):
                only_old.open(entry)
        resealed = await session.get(Subscription, plain.id)
        assert resealed is not None
        assert only_new.open(resealed.secrets[0]) == legacy

    payload = alert_raised(raised_by="PH", affected=[])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    [delivery] = [d for d in await harness.planned(event, 6) if d.channel == "webhook"]
    async with harness.dispatcher_with(webhook_secret_keys=FIRST_KEY) as too_early:
        await too_early.dispatch_due(now=utcnow())
    failed = await reload(harness, delivery)
    assert failed.status == "retrying"
    assert "BALI_WEBHOOK_SECRET_KEYS lacks" in (failed.last_error or "")
    assert endpoint.requests == []
    async with harness.dispatcher_with(webhook_secret_keys=second_key) as rotated:
        assert failed.next_attempt_at is not None
        await rotated.dispatch_due(now=failed.next_attempt_at)
    [hook] = endpoint.requests
    assert hook.verified
    await unsubscribe(harness, "PH", subscription_id)
    async with harness.runtime.sessions() as session:
        kept = await session.get(Subscription, plain.id)
        assert kept is not None
        await session.delete(kept)
        await session.commit()


def test_production_refuses_to_start_without_keys_and_names_a_bad_one_by_position(
    tmp_path: Path,
) -> None:
    production = {
        "environment": "production",
        "jwks_url": "https://idp.example.org/jwks",
        "link_signing_secret": "a-real-link-secret",
        "data_dir": tmp_path,
    }
    assert production["link_signing_secret"] != DEV_LINK_SECRET
    with pytest.raises(ValidationError, match="BALI_WEBHOOK_SECRET_KEYS"):
        NotificationsSettings(**production)
    NotificationsSettings(**production, webhook_secret_keys=Fernet.generate_key().decode())
    key = Fernet.generate_key().decode()
    with pytest.raises(ValueError, match="key 2 is not a Fernet key") as refused:
        secrets_at_rest.parse_keys(f"{key},not-a-key-at-all")
    assert "not-a-key-at-all" not in str(refused.value)
    assert key not in str(refused.value)


def test_in_development_a_key_is_generated_once_in_the_data_directory(tmp_path: Path) -> None:
    settings = NotificationsSettings(data_dir=tmp_path)
    box = secrets_at_rest.box_for(settings)
    key_file = settings.resolved_webhook_key_path()
    assert key_file.parent == tmp_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealed = box.seal("whsec_c2VjcmV0")
    again = secrets_at_rest.box_for(NotificationsSettings(data_dir=tmp_path))
    assert again.open(sealed) == "whsec_c2VjcmV0"
