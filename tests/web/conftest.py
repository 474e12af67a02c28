"""Fixtures for pages in a real headless Chromium."""

from tests.helpers.browser import live_server, page

__all__ = ["live_server", "page"]
