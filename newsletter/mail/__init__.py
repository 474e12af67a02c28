"""Email: render every message from templates (render), sign it (dkim), deliver it (smtp)."""
