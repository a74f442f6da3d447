"""Events of the activities stream."""
