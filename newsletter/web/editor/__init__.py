"""The editor's workplace under /editor."""
