"""Registers the notifications test fixtures, defined in the two shared helper modules."""

from notification_harness import notifications
from notification_receivers import canary, smtp_server, webhook_receiver

__all__ = ["canary", "notifications", "smtp_server", "webhook_receiver"]
