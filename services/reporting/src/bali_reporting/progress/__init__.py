"""The ministerial progress report: one year of the strategy, as printable HTML and as PDF."""
