"""Rebuild: replay every topic into fresh tables and swap them in while the service runs."""
