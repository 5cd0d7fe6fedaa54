"""`safespeak serve`: an HTTP API and a web page over one `safespeak.Detector` (needs `safespeak[deploy]`).

`create_app(detector, settings)` builds the ASGI app; `run(detector, settings)` serves it with uvicorn.
"""

from __future__ import annotations

from safespeak.serve.app import ServeSettings, create_app, page_html, run

__all__ = ["ServeSettings", "create_app", "page_html", "run"]
