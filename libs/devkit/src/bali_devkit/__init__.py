"""Developer tooling: the `bali` CLI, embedded broker, mail drop, demo data, pytest plugin."""
