"""Bali Process Cooperation Platform: the notifications service."""
