"""The relay's one URL."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [path("events", views.relay, name="relay")]
