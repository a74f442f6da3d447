"""Webhook signing secrets at rest: sealed with configured Fernet keys, resealed to the newest."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bali_common.db import SessionFactory, create_engine, create_session_factory, transaction
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlmodel import col, select

from bali_notifications.settings import NotificationsSettings
from bali_notifications.subscriptions.models import Subscription

log = logging.getLogger(__name__)


class UnreadableSecret(Exception):
    """A stored secret none of the configured keys opens (a key was dropped too early)."""


class SecretBox:
    """Seals with the first key and opens with any: keys rotate without a flag day.

    A subscription keeps its secrets as `{"sealed": <Fernet token>, "expires_at": ...}`;
    an entry written before secrets were sealed holds `{"secret": <plain text>}` and is
    still read, until `reseal` seals it.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._newest = Fernet(keys[0])
        self._all = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secret: str, expires_at: datetime | None = None) -> dict[str, Any]:
        """A stored entry for `secret`, which signs until `expires_at` (None: for good)."""
        return {
            "sealed": self._all.encrypt(secret.encode()).decode("ascii"),
            "expires_at": None if expires_at is None else expires_at.isoformat(),
        }

    def open(self, entry: dict[str, Any]) -> str:
        if "sealed" not in entry:
            return str(entry["secret"])
        try:
            return self._all.decrypt(str(entry["sealed"]).encode()).decode()
        except InvalidToken:
            raise UnreadableSecret(
                "a webhook signing secret is sealed with a key BALI_WEBHOOK_SECRET_KEYS lacks"
            ) from None

    def active(self, entries: Sequence[dict[str, Any]], now: datetime) -> list[str]:
        """The secrets that still sign: the current one, and a rotated-out one until it
        expires (Standard Webhooks: one signature per active secret)."""
        return [
            self.open(entry)
            for entry in entries
            if entry.get("expires_at") is None
            or datetime.fromisoformat(str(entry["expires_at"])) > now
        ]

    def is_current(self, entry: dict[str, Any]) -> bool:
        """Sealed under the newest key."""
        if "sealed" not in entry:
            return False
        try:
            self._newest.decrypt(str(entry["sealed"]).encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The entry sealed under the newest key (a plain one sealed for the first time)."""
        if "sealed" not in entry:
            token = self._all.encrypt(str(entry["secret"]).encode()).decode("ascii")
            return {"sealed": token, "expires_at": entry.get("expires_at")}
        try:
            token = self._all.rotate(str(entry["sealed"]).encode()).decode("ascii")
        except InvalidToken:
            raise UnreadableSecret("cannot reseal a secret no configured key opens") from None
        return {"sealed": token, "expires_at": entry.get("expires_at")}


def box_for(settings: NotificationsSettings) -> SecretBox:
    """The keys of `BALI_WEBHOOK_SECRET_KEYS` (newest first), or in development one key
    generated in the data directory, like the dev signing key."""
    if settings.webhook_secret_keys is None:
        return SecretBox([load_or_create_dev_key(settings.resolved_webhook_key_path())])
    return SecretBox(parse_keys(settings.webhook_secret_keys.get_secret_value()))


def parse_keys(value: str) -> list[bytes]:
    """Comma-separated Fernet keys; the error names the position, never the key."""
    keys = [part.strip().encode() for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError("BALI_WEBHOOK_SECRET_KEYS holds no key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"BALI_WEBHOOK_SECRET_KEYS: key {position} is not a Fernet key "
                "(32 bytes, url-safe base64)"
            ) from None
    return keys


def load_or_create_dev_key(path: Path) -> bytes:
    """The development key, created on first use; racing processes all end with one key.

    Written in full to a 0600 temporary file beside `path` and published with `os.link`,
    which fails if `path` exists: the loser reads the winner's key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(Fernet.generate_key())
                tmp.flush()
                os.fsync(tmp.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp_name, path)
        finally:
            os.unlink(tmp_name)
    return path.read_bytes().strip()


@dataclass(frozen=True)
class ResealReport:
    """What `reseal` did: entries sealed for the first time, moved to the newest key, left."""

    sealed: int = 0
    rekeyed: int = 0
    unreadable: int = 0


async def reseal(sessions: SessionFactory, box: SecretBox, *, batch: int = 100) -> ResealReport:
    """Seal every stored secret under the newest key; safe to run while the service runs, and
    again (what is current stays as it is). After it reports nothing unreadable, an older key
    can be dropped from `BALI_WEBHOOK_SECRET_KEYS`."""
    sealed = rekeyed = unreadable = 0
    after = ""
    while True:
        async with transaction(sessions) as session:
            page = list(
                (
                    await session.exec(
                        select(Subscription)
                        .where(col(Subscription.id) > after)
                        .order_by(col(Subscription.id))
                        .limit(batch)
                        .with_for_update()
                    )
                ).all()
            )
            for subscription in page:
                entries = []
                for entry in subscription.secrets:
                    if box.is_current(entry):
                        entries.append(entry)
                        continue
                    try:
                        entries.append(box.reseal(entry))
                    except UnreadableSecret:
                        unreadable += 1
                        entries.append(entry)
                        continue
                    if "sealed" in entry:
                        rekeyed += 1
                    else:
                        sealed += 1
                if entries != subscription.secrets:
                    subscription.secrets = entries
                    session.add(subscription)
        if len(page) < batch:
            break
        after = page[-1].id
    report = ResealReport(sealed=sealed, rekeyed=rekeyed, unreadable=unreadable)
    if sealed or rekeyed or unreadable:
        log.info(
            "webhook secrets: %d sealed, %d moved to the newest key, %d unreadable",
            sealed,
            rekeyed,
            unreadable,
        )
    return report


async def reseal_database(settings: NotificationsSettings) -> ResealReport:
    """`reseal` on the service's database, from outside the running service."""
    engine = create_engine(settings.resolved_database_url())
    try:
        return await reseal(create_session_factory(engine), box_for(settings))
    finally:
        await engine.dispose()
