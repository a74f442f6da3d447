"""`python -m bali_reporting` runs the service with its settings from the environment."""

from bali_common.server import serve

from bali_reporting.app import create_app
from bali_reporting.settings import ReportingSettings


def main() -> None:
    settings = ReportingSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
