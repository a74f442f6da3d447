"""Deliveries: one notification of one event to one recipient, its attempts and its sending."""
