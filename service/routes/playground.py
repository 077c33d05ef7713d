"""The playground: a static page at ``/`` and its files under ``/playground/``, under a strict CSP.

The page is plain HTML, CSS and JavaScript modules that call the public API from the browser; no
build step. Only the files named in ``ASSETS`` are served (no directory listing, no path lookups).
"""

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse

from core.errors import JobNotFoundError
from core.settings import Settings
from service.deps import SettingsDep

STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "playground"
ASSETS = {
    "playground.js": "text/javascript",
    "api.js": "text/javascript",
    "params.js": "text/javascript",
    "models.js": "text/javascript",
    "snippets.js": "text/javascript",
    "view.js": "text/javascript",
    "playground.css": "text/css",
}

router = APIRouter(include_in_schema=False)


def media_origins(settings: Settings) -> list[str]:
    """Where the page may load result videos and previews from: the gateway, object URLs, and S3 when used."""
    origins = ["'self'", "blob:"]
    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    if endpoint:  # presigned URLs are path-style (core.storage), so the endpoint's origin covers them
        parts = urlsplit(endpoint)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return origins


def content_security_policy(settings: Settings) -> str:
    """No inline script or style, nothing from elsewhere but media from storage, no framing."""
    media = " ".join(media_origins(settings))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media}",
            f"media-src {media}",
            "connect-src 'self'",  # uploads go through POST /uploads (multipart), never straight to S3
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def _headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",  # revalidate: a new gateway version serves its own page at once
    }


@router.get("/")
def playground(settings: SettingsDep) -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_headers(settings))


@router.get("/playground/{name}")
def playground_asset(name: str, settings: SettingsDep) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise JobNotFoundError(f"the playground has no file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=f"{media_type}; charset=utf-8", headers=_headers(settings))
