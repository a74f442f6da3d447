"""The member directory: states, organisations, the RSO and working groups, with focal points."""
