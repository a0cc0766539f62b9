"""The `triage` command line: thin commands above the triage, training and serving packages."""
