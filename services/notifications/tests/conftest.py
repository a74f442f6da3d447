"""Registers the notifications test fixtures (defined in `notification_harness`)."""

from notification_harness import canary, smtp_server, webhook_receiver

__all__ = ["canary", "smtp_server", "webhook_receiver"]
