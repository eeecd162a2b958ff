"""The local App Services-compatible server."""
