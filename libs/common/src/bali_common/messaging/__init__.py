"""Messaging plumbing: outbox relay, consumer runner with inbox, dead letters."""
