"""The activity log: cooperation activities against the strategy items, versioned and audited."""
