"""Outgoing webhooks: events recorded as rows (events), each posted and signed (post)."""
