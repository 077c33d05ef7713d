"""Refuses JSON request bodies nested deeper than any request of this API needs, before anything parses them.

A 2 KB body of nested brackets made the metadata validator recurse to Python's limit (a 500 and a
170 KB traceback per request, issue 19), and ``json.loads`` itself recurses once per level. The
nesting is counted here by one iterative scan of the bytes, so no parser or validator ever walks
user data deeper than ``MAX_JSON_DEPTH``; a deeper body is a 422 and one log line.
"""

import logging
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.body_limit import BodyTooLargeError
from service.errors import error_response

logger = logging.getLogger(__name__)

# Objects and arrays, the body itself counting as one: a job body with metadata 5 levels deep is 6.
MAX_JSON_DEPTH = 32
# A JSON string (skipped whole, so brackets inside strings do not count) or a bracket.
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def json_nesting_depth(body: bytes, *, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``body``, counted without parsing or recursion.

    The scan stops early once the depth passes ``stop_above``. Malformed JSON gets a number too;
    the parser that runs afterwards refuses it with its own message.
    """
    depth = deepest = 0
    for match in _TOKEN.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    break
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI would parse the body as JSON: application/json or application/*+json."""
    content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip().lower()
    return content_type == b"application/json" or (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    )


class JsonDepthLimitMiddleware:
    """Reads a JSON body whole (the size cap outside bounds it), checks its nesting, then replays it."""

    def __init__(self, app: ASGIApp, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        try:
            messages, body = await _read_body(receive)
        except BodyTooLargeError as exc:
            await error_response(413, "payload_too_large", str(exc))(scope, receive, send)
            return
        depth = json_nesting_depth(body, stop_above=self.max_depth)
        if depth > self.max_depth:
            logger.warning(
                "refused a JSON body nested more than %d levels deep on %s %s",
                self.max_depth, scope["method"], scope["path"],
            )  # fmt: skip
            response = error_response(
                422, "invalid_request",
                f"body: JSON is nested more than {self.max_depth} levels deep (arrays and objects)",
                details=[{"field": "body", "message": f"nested more than {self.max_depth} levels", "type": "too_deep"}],
            )  # fmt: skip
            await response(scope, receive, send)
            return
        replay = iter(messages)

        async def replaying_receive() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replaying_receive, send)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # a disconnect: replayed to the app, which sees the client gone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return messages, b"".join(chunks)
