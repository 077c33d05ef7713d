"""Caps request bodies before anything parses them: a job request is a few kilobytes of JSON.

A declared Content-Length over the cap is answered 413 at once; a chunked body is cut off when
it passes the cap (a JSON one is answered 413 by ``service.json_depth``, which reads it first). File uploads
(``POST /uploads``, the signed ``PUT /files/...``) stream under their own, larger cap (service.uploads) and pass
through untouched.
"""

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response

MAX_BODY_BYTES = 64 * 1024  # URLs (2 KiB each), metadata (4 KiB) and params fit many times over


class BodyTooLargeError(Exception):
    """Raised from ``receive`` when a streamed body passes the cap."""


def is_file_upload(scope: Scope) -> bool:
    """The requests whose bodies are files: they enforce the upload cap themselves, while streaming."""
    method, path = scope.get("method"), scope.get("path", "")
    return (method == "POST" and path == "/uploads") or (method == "PUT" and path.startswith("/files/"))


class BodySizeLimitMiddleware:
    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, exempt: Callable[[Scope], bool] = is_file_upload
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = error_response(
                413, "payload_too_large", f"request bodies are limited to {self.max_bytes} bytes"
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLargeError(f"request body passed {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)
