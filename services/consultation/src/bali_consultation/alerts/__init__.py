"""Alerts of the Consultation Mechanism: raised by members, driven to resolution by co-chairs."""
