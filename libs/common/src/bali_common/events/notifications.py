"""Events of the notifications stream."""
