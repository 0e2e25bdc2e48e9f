"""Settings for the relay example: no database, no apps, one URL.

Run it from ``docs/examples``::

    SSE_UPSTREAM_URL=http://127.0.0.1:8001/events \
        DJANGO_SETTINGS_MODULE=django_relay.settings python -m django runserver --noreload
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-sse-sync-relay-example")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

ROOT_URLCONF = "django_relay.urls"
INSTALLED_APPS: list[str] = []
# No GZipMiddleware or other middleware that buffers bodies: events must leave at once.
MIDDLEWARE: list[str] = []
# The relay stores nothing; Django's dummy backend stands in and is never used.
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

SSE_UPSTREAM_URL = os.environ.get("SSE_UPSTREAM_URL", "http://127.0.0.1:8001/events")
"""The event stream that every client of the relay receives."""

SSE_HEARTBEAT_SECONDS = float(os.environ.get("SSE_HEARTBEAT_SECONDS", "15"))
"""Longest quiet time before the relay sends a heartbeat comment.

It keeps proxies from closing an idle connection, and bounds how long a client that has gone
holds its upstream connection: the server notices a gone client only when a write fails."""
