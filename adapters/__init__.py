"""Swappable HTTP transports and session storages for appusers."""
