"""Bali Process Cooperation Platform: the activities service."""
