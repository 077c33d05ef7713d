"""Running the gateway with uvicorn: ``run(settings, host=, port=)`` for ``mimicmotion serve``,
and ``create_app_from_environment`` for ``uvicorn --factory service.server:create_app_from_environment``.
"""

import uvicorn
from fastapi import FastAPI

from core.settings import Settings, get_settings
from service.app import create_app
from service.http_limits import header_deadline_protocol


def run(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Serve until interrupted; ``host``/``port`` (the CLI flags) override the settings."""
    updates = {name: value for name, value in (("host", host), ("port", port)) if value is not None}
    settings = settings.model_copy(update=updates)
    # Built here, before binding, so a refused configuration fails before any socket opens.
    app = create_app(settings)
    # log_config=None: uvicorn's lines go through the root handler the CLI set up (text or JSON).
    # h11 with a capped head buffer and a head deadline, not httptools (service/http_limits.py says why).
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                proxy_headers=True, log_config=None, http=header_deadline_protocol(settings.http_header_timeout_s),
                h11_max_incomplete_event_size=settings.http_max_header_bytes)


def create_app_from_environment() -> FastAPI:
    """Zero-argument factory for ``uvicorn --factory`` (containers): settings from MIMICMOTION_*."""
    return create_app(get_settings())
