"""The embedded default's SMTP server: it keeps every message as a file instead of sending it."""

from __future__ import annotations

import email
import email.policy
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _DropHandler:
    def __init__(self, directory: Path, announce: Callable[[str], None]) -> None:
        self._directory = directory
        self._announce = announce
        self._numbers = itertools.count(len(list(directory.glob("*.eml"))) + 1)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        content: bytes = envelope.original_content or envelope.content
        path = self._directory / f"{next(self._numbers):05d}.eml"
        path.write_bytes(content)
        message = email.message_from_bytes(content, policy=email.policy.default)
        self._announce(f"to {', '.join(envelope.rcpt_tos)}: {message['subject']} ({path.name})")
        return "250 Message accepted for delivery"


class MailDrop:
    """SMTP on `host:port`; messages land in `directory` as .eml files, one line logged each."""

    def __init__(
        self, directory: Path, *, host: str, port: int, announce: Callable[[str], None]
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._controller = Controller(
            _DropHandler(directory, announce), hostname=host, port=port, ready_timeout=10
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
