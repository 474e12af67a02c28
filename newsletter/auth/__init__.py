"""Who may act: editor passwords, login throttling, browser sessions, API bearer tokens."""
