"""ASGI entry point: `uvicorn bali_notifications.main:app`."""

from bali_notifications.app import create_app

app = create_app()
