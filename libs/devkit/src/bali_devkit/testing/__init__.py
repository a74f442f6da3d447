"""Pytest fixtures shared by every package: real broker, real databases, dev tokens."""
