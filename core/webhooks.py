"""Webhook signing (floor 3): the signed body, Standard Webhooks signing and verification, retry delays.

Pure functions only (no Redis, no HTTP): event names live in ``core.contract.events``, ``core.jobs.deliveries``
keeps the records and ``core.execution.webhook_sender`` sends them. Torch-free, as the gateway imports it.
Spec: Standard Webhooks v1 (service-practices §4.1): the signed content is
``"{webhook-id}.{webhook-timestamp}.{body}"``, HMAC-SHA256 with the key inside ``whsec_<base64>``.
"""

import base64
import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Mapping
from typing import Any

from core.contract.ascii_numbers import parse_ascii_int
from core.contract.events import RETRY_JITTER, SECRET_PREFIX, WebhookEvent, secret_key, split_secrets
from core.errors import MimicMotionError

TIMESTAMP_TOLERANCE_S = 5 * 60  # the reference library's window for replayed or delayed messages
SIGNATURE_VERSION = "v1"


class WebhookVerificationError(MimicMotionError):
    """A webhook's signature or timestamp does not check out."""

    code = "invalid_webhook_signature"


def new_secret() -> str:
    """A fresh ``whsec_`` secret of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secrets_setting: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (plus the content type) for one attempt.

    ``secrets_setting`` holds one secret or several (a rotation): the signature header then lists a ``v1,``
    signature by each, space-separated, which the spec allows so receivers accept either.
    """
    signatures = " ".join(sign(secret, msg_id, timestamp, body) for secret in split_secrets(secrets_setting))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float) -> None:
    """Check a received webhook as a receiver must: any listed v1 signature matches, timestamp is recent.

    Args:
        headers: the request headers, names lower-case.
        now: the receiver's clock (unix seconds).

    Raises:
        WebhookVerificationError: a header is missing, the timestamp is outside the tolerance, or no
            signature matches.
    """
    try:
        msg_id, timestamp_text, signatures = (
            headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
        )  # fmt: skip
    except KeyError:
        raise WebhookVerificationError("missing or malformed webhook-id, webhook-timestamp or signature") from None
    timestamp = parse_ascii_int(timestamp_text)  # int() would also take " 17", "1_7" and other scripts' digits
    if timestamp is None:
        raise WebhookVerificationError("missing or malformed webhook-id, webhook-timestamp or signature")
    if abs(now - timestamp) > TIMESTAMP_TOLERANCE_S:
        raise WebhookVerificationError(f"webhook-timestamp {timestamp} is more than 5 minutes from now")
    expected = sign(secret, msg_id, timestamp, body).encode()
    # The header is a space-separated list, so old and new secrets can both sign during a rotation.
    if not any(hmac.compare_digest(expected, token.encode()) for token in signatures.split()):
        raise WebhookVerificationError("no webhook-signature matches the body")


def event_body(event_type: WebhookEvent, job_view: Mapping[str, Any]) -> bytes:
    """The body of one event: the public job object plus ``type``, as compact JSON (signed byte for byte)."""
    return json.dumps({"type": event_type, **job_view}, separators=(",", ":"), allow_nan=False).encode()


def retry_delay_s(schedule: tuple[float, ...], num_attempts: int, rng: random.Random) -> float | None:
    """Seconds to wait before the next attempt after ``num_attempts`` failed ones; None when they are used up."""
    if num_attempts >= len(schedule):
        return None
    delay = schedule[num_attempts]
    return delay * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)


def is_success(status_code: int) -> bool:
    """Any 2xx; a redirect is a failure (Standard Webhooks: receivers answer, they do not redirect)."""
    return 200 <= status_code < 300


def is_permanent_refusal(status_code: int) -> bool:
    """410 Gone: the receiver says the endpoint is gone for good, so retrying is pointless."""
    return status_code == 410
