"""Subscribers: the state machine, validation, signed links, import/export, search, stats."""
