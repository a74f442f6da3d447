"""Subscriptions: a member's standing request to hear of matching events on one channel."""
