"""`python -m bali_reporting` runs the service; `migrate` migrates its database; `rebuild`
rebuilds the projections.

The rebuild runs inside the service (it pauses the service's own consumer), so this
command asks a running instance to do it and follows the progress. In a container:
`python -m bali_reporting rebuild --token "$ADMIN_TOKEN"` talks to the service in the
same container unless `--url` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import httpx
from bali_common.server import serve

from bali_reporting import migrations
from bali_reporting.app import create_app
from bali_reporting.rebuild.client import RebuildRefused, describe, run_rebuild
from bali_reporting.rebuild.models import RebuildStatus
from bali_reporting.settings import ReportingSettings


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["migrate"]:
        # Imported here: Alembic costs a starting service most of a second, for nothing.
        from bali_common.migrations import main as migrate

        raise SystemExit(migrate("reporting", migrations.DIRECTORY, args[1:]))
    if args[:1] == ["rebuild"]:
        raise SystemExit(rebuild(args[1:]))
    settings = ReportingSettings()
    serve(create_app(settings), settings)


def rebuild(argv: list[str]) -> int:
    settings = ReportingSettings()
    parser = argparse.ArgumentParser(
        prog="python -m bali_reporting rebuild",
        description="Rebuild every projection from the topics and swap the new tables in.",
    )
    parser.add_argument("--url", default=f"http://127.0.0.1:{settings.port}", help="service URL")
    parser.add_argument(
        "--token", default=os.environ.get("BALI_ADMIN_TOKEN"), help="admin bearer token"
    )
    options = parser.parse_args(argv)
    if not options.token:
        parser.error("an admin token is needed: --token or BALI_ADMIN_TOKEN")

    def show(status: RebuildStatus) -> None:
        print(describe(status), file=sys.stderr, flush=True)

    try:
        final = asyncio.run(run_rebuild(options.url, options.token, on_progress=show))
    except (RebuildRefused, httpx.HTTPError) as error:
        print(f"rebuild not started: {error}", file=sys.stderr)
        return 2
    return 0 if final.state.value == "done" else 1


if __name__ == "__main__":
    main()
