"""Registers the notifications test fixtures (defined in `notification_harness`)."""

from notification_harness import canary, notifications, smtp_server, webhook_receiver

__all__ = ["canary", "notifications", "smtp_server", "webhook_receiver"]
