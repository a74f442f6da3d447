"""ASGI entry point: `uvicorn bali_activities.main:app`."""

from bali_activities.app import create_app

app = create_app()
