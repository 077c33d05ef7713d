"""Webhook vocabulary: event names, the event a status announces, the signing secret's format and the
retry schedule's default. Pure data and parsing; ``core.webhooks`` signs and verifies with it.
"""

import base64
import binascii
import re
from typing import Literal, get_args

from core.contract.records import JobStatus

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
# Svix's schedule (service-practices §4.2): the delay before each attempt, the first one immediate.
SVIX_RETRY_SCHEDULE_S: tuple[float, ...] = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
RETRY_JITTER = 0.1  # each delay is drawn from +-10 % so retries of many messages do not arrive in lockstep


def split_secrets(value: str) -> tuple[str, ...]:
    """The secrets in a setting that may hold several (comma- or space-separated), newest first."""
    return tuple(part for part in re.split(r"[\s,]+", value.strip()) if part)


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
