"""HTTP conventions shared by every service API: pagination, idempotency, concurrency, audit."""
