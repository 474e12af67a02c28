"""WSGI entry for gunicorn: `gunicorn newsletter.wsgi:app`. A bad setting exits with one line."""

from newsletter.main import make_app

app = make_app()
