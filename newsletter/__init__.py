"""Tip of the Week: a self-hosted weekly newsletter. ``create_app()`` builds the service."""

from newsletter.app import create_app

__all__ = ["create_app"]
