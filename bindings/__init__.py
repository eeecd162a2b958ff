"""Bindings that deliver appusers' streams on a host loop (asyncio, Qt, Kivy)."""
