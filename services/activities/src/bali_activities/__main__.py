"""`python -m bali_activities` runs the service with its settings from the environment."""

from bali_common.server import serve

from bali_activities.app import create_app
from bali_activities.settings import ActivitiesSettings


def main() -> None:
    settings = ActivitiesSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
