"""Events of the alerts stream."""
