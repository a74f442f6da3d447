"""Bali Process Cooperation Platform: the consultation service."""
