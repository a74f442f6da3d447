"""HTTP routes of the reporting service: thin adapters that parse, authorise and call a query."""
