"""WSGI entry ``cadent.api.wsgi:app``: config from ``$CADENT_API_CONFIG`` / ``$CADENT_API_INSTANCE``.

The app is built on first attribute access, so importing this module opens nothing.
"""

from __future__ import annotations

import os


def build_app():
    """The Flask app for the configuration named by the environment."""
    from cadent.api.app import create_app
    from cadent.compat.api_settings import read_api_settings

    settings = read_api_settings(os.environ.get("CADENT_API_CONFIG") or None, os.environ.get("CADENT_API_INSTANCE") or None)
    return create_app(settings)


def __getattr__(name: str):
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
