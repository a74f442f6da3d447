"""ASGI entry point: `uvicorn bali_consultation.main:app`."""

from bali_consultation.app import create_app

app = create_app()
