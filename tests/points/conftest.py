"""The browser fixtures for the share page's points test."""

from tests.web.conftest import browser_context, chromium, live_server  # noqa: F401
