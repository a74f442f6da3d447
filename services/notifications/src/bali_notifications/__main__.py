"""`python -m bali_notifications` runs the service; `... migrate` migrates its database."""

import sys

from bali_common.server import serve

from bali_notifications import migrations
from bali_notifications.app import create_app
from bali_notifications.settings import NotificationsSettings


def main() -> None:
    if sys.argv[1:2] == ["migrate"]:
        # Imported here: Alembic costs a starting service most of a second, for nothing.
        from bali_common.migrations import main as migrate

        raise SystemExit(migrate("notifications", migrations.DIRECTORY, sys.argv[2:]))
    settings = NotificationsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
