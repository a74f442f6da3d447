"""`python -m bali_consultation` runs the service; `... migrate` migrates its database."""

import sys

from bali_common.server import serve

from bali_consultation import migrations
from bali_consultation.app import create_app
from bali_consultation.settings import ConsultationSettings


def main() -> None:
    if sys.argv[1:2] == ["migrate"]:
        # Imported here: Alembic costs a starting service most of a second, for nothing.
        from bali_common.migrations import main as migrate

        raise SystemExit(migrate("consultation", migrations.DIRECTORY, sys.argv[2:]))
    settings = ConsultationSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
