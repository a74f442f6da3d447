"""`python -m bali_notifications` runs the service; `migrate` migrates its database,
`reseal-webhook-secrets` reseals the stored webhook secrets."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bali_common.server import serve

from bali_notifications import migrations
from bali_notifications.app import create_app
from bali_notifications.secrets_at_rest import reseal_database
from bali_notifications.settings import NotificationsSettings


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["migrate"]:
        # Imported here: Alembic costs a starting service most of a second, for nothing.
        from bali_common.migrations import main as migrate

        raise SystemExit(migrate("notifications", migrations.DIRECTORY, arguments[1:]))
    parser = argparse.ArgumentParser(prog="python -m bali_notifications")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("migrate", help="migrate the database (see `migrate --help`)")
    commands.add_parser(
        "reseal-webhook-secrets",
        help="seal every stored webhook signing secret under the first key of "
        "BALI_WEBHOOK_SECRET_KEYS (after adding a key); exits 1 if one cannot be opened",
    )
    command = parser.parse_args(arguments).command
    settings = NotificationsSettings()
    if command == "reseal-webhook-secrets":
        report = asyncio.run(reseal_database(settings))
        print(
            f"webhook secrets: {report.sealed} sealed from plain text, {report.rekeyed} moved "
            f"to the newest key, {report.unreadable} unreadable with the configured keys"
        )
        sys.exit(1 if report.unreadable else 0)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
