"""The chat web UI: `render` makes the HTML (pure functions), `app` is the Gradio app that serves it."""

from .app import build_app, check_port_free, serve

__all__ = ["build_app", "check_port_free", "serve"]
