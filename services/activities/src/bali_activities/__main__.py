"""`python -m bali_activities` runs the service; `... migrate` migrates its database."""

import sys

from bali_common.server import serve

from bali_activities import migrations
from bali_activities.app import create_app
from bali_activities.settings import ActivitiesSettings


def main() -> None:
    if sys.argv[1:2] == ["migrate"]:
        # Imported here: Alembic costs a starting service most of a second, for nothing.
        from bali_common.migrations import main as migrate

        raise SystemExit(migrate("activities", migrations.DIRECTORY, sys.argv[2:]))
    settings = ActivitiesSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
