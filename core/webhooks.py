"""Webhooks as data: event names, the signed body, Standard Webhooks signing and verification, retries.

Pure functions only (no Redis, no HTTP): ``core.jobs.deliveries`` keeps the records and
``core.jobs.webhook_sender`` sends them. Torch-free, as the gateway imports it.
Spec: Standard Webhooks v1 (service-practices §4.1): the signed content is
``"{webhook-id}.{webhook-timestamp}.{body}"``, HMAC-SHA256 with the key inside ``whsec_<base64>``.
"""

import base64
import binascii
import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Mapping
from typing import Any, Literal, get_args

from core.errors import MimicMotionError
from core.jobs.records import JobStatus

WebhookEvent = Literal["job.started", "job.progress", "job.succeeded", "job.failed", "job.canceled"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = get_args(WebhookEvent)
DEFAULT_WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("job.started", "job.succeeded", "job.failed", "job.canceled")
# The event a job's status change announces; progress has no status of its own.
EVENT_BY_STATUS: dict[JobStatus, WebhookEvent] = {
    JobStatus.running: "job.started",
    JobStatus.succeeded: "job.succeeded",
    JobStatus.failed: "job.failed",
    JobStatus.canceled: "job.canceled",
}

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
TIMESTAMP_TOLERANCE_S = 5 * 60  # the reference library's window for replayed or delayed messages
# Svix's schedule (service-practices §4.2): the delay before each attempt, the first one immediate.
SVIX_RETRY_SCHEDULE_S: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
RETRY_JITTER = 0.1  # each delay is drawn from +-10 % so retries of many messages do not arrive in lockstep


class WebhookVerificationError(MimicMotionError):
    """A webhook's signature or timestamp does not check out."""

    code = "invalid_webhook_signature"


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_<base64>`` secret.

    Raises:
        ValueError: not ``whsec_`` followed by base64 of at least 24 bytes.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX} (then base64 of 24 to 64 random bytes)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after whsec_ of a webhook secret must be base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(f"a webhook secret holds 24 to 64 bytes; this one holds {len(key)}")
    return key


def new_secret() -> str:
    """A fresh ``whsec_`` secret of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (plus the content type) for one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
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
        timestamp = int(timestamp_text)
    except (KeyError, ValueError):
        raise WebhookVerificationError("missing or malformed webhook-id, webhook-timestamp or signature") from None
    if abs(now - timestamp) > TIMESTAMP_TOLERANCE_S:
        raise WebhookVerificationError(f"webhook-timestamp {timestamp} is more than 5 minutes from now")
    expected = sign(secret, msg_id, timestamp, body).encode()
    # The header is a space-separated list, so old and new secrets can both sign during a rotation.
    if not any(hmac.compare_digest(expected, token.encode()) for token in signatures.split()):
        raise WebhookVerificationError("no webhook-signature matches the body")


def event_body(event_type: WebhookEvent, job_view: Mapping[str, Any]) -> bytes:
    """The body of one event: the public job object plus ``type``, as compact JSON (signed byte for byte)."""
    return json.dumps({"type": event_type, **job_view}, separators=(",", ":"), allow_nan=False).encode()


def parse_retry_schedule(value: str) -> tuple[float, ...]:
    """``"0,5,300"`` -> (0.0, 5.0, 300.0): the delay before each attempt, so its length is the attempt count.

    Raises:
        ValueError: empty, not numbers, or a negative delay.
    """
    try:
        delays = tuple(float(item) for item in value.split(",") if item.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a comma-separated list of seconds, e.g. 0,5,300") from None
    if not delays or any(delay < 0 for delay in delays):
        raise ValueError(f"{value!r}: give at least one delay, none negative")
    return delays


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
