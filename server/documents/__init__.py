"""Embedded document store behind the MongoDB service seam."""
