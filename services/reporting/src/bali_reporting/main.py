"""ASGI entry point: `uvicorn bali_reporting.main:app`."""

from bali_reporting.app import create_app

app = create_app()
