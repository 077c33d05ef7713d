"""``verify_webhook``: check a webhook from the gateway as Standard Webhooks v1 asks, before trusting its body.

The signature is ``v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">``, keyed with the base64
part of the ``whsec_...`` secret; the header may list several (spaces between), e.g. during a secret rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from mimicmotion_client.errors import INVALID_WEBHOOK, WebhookVerificationError
from mimicmotion_client.types import Job, WebhookEvent

SECRET_PREFIX = "whsec_"
TIMESTAMP_TOLERANCE_S = 5 * 60


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: float = TIMESTAMP_TOLERANCE_S,
    now: float | None = None,
) -> WebhookEvent:
    """The verified event; raises WebhookVerificationError if anything does not check out.

    Args:
        body: the request body exactly as received (bytes, or the text before any JSON parsing).
        headers: the request headers (any case): ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.
        secret: the gateway's ``MIMICMOTION_WEBHOOK_SECRET`` (``whsec_...``).
        tolerance_s: how far ``webhook-timestamp`` may be from ``now`` (default 5 min), against replays.

    Example:
        >>> @app.post("/hooks/mimicmotion")
        ... async def hook(request: Request) -> Response:
        ...     event = verify_webhook(await request.body(), request.headers, os.environ["WEBHOOK_SECRET"])
        ...     if event.type == "job.succeeded":
        ...         save(event.job.output.video_url)
        ...     return Response(status_code=204)
    """
    raw = body.encode() if isinstance(body, str) else bytes(body)
    named = {name.lower(): value for name, value in headers.items()}
    msg_id, timestamp_text, signatures = (
        named.get("webhook-id"), named.get("webhook-timestamp"), named.get("webhook-signature")
    )  # fmt: skip
    if not msg_id or not timestamp_text or not signatures:
        raise WebhookVerificationError(
            "missing webhook-id, webhook-timestamp or webhook-signature header", code=INVALID_WEBHOOK
        )
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        message = f"webhook-timestamp {timestamp_text!r} is not a number"
        raise WebhookVerificationError(message, code=INVALID_WEBHOOK) from None
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp {timestamp} is more than {tolerance_s:g} s from now", code=INVALID_WEBHOOK
        )
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest())
    matched = False
    for entry in signatures.split(" "):
        version, _, signature = entry.partition(",")
        # Every entry is compared (no early exit), each in constant time.
        matched |= version == "v1" and hmac.compare_digest(expected, signature.encode())
    if not matched:
        raise WebhookVerificationError("no webhook-signature matches the body", code=INVALID_WEBHOOK)
    try:
        payload = json.loads(raw)
        return WebhookEvent(type=str(payload["type"]), id=msg_id, timestamp=timestamp, job=Job.from_json(payload))
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookVerificationError(f"the signed body is not a job event: {exc}", code=INVALID_WEBHOOK) from None


def _key(secret: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)  # padding may be left off
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise WebhookVerificationError("the secret is not whsec_ followed by base64", code=INVALID_WEBHOOK)
    return key
