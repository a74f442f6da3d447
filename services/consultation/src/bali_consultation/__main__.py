"""`python -m bali_consultation` runs the service with its settings from the environment."""

from bali_common.server import serve

from bali_consultation.app import create_app
from bali_consultation.settings import ConsultationSettings


def main() -> None:
    settings = ConsultationSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
