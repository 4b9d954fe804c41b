"""cadent's graphite-compatible HTTP API (render, find, expand, index) over whisper + CarbonLink."""

from cadent.api.app import create_app

__all__ = ["create_app"]
