"""`python -m bali_notifications` runs the service with its settings from the environment."""

from bali_common.server import serve

from bali_notifications.app import create_app
from bali_notifications.settings import NotificationsSettings


def main() -> None:
    settings = NotificationsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
