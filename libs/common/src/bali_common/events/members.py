"""Events of the members stream."""
