"""The newsletter's look, set by editors at /editor/settings: checked, stored, cached."""
