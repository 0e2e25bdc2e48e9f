"""A minimal Django project that relays an upstream event stream to browsers (see README.md)."""
