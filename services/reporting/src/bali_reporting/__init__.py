"""Bali Process Cooperation Platform: the reporting service."""
