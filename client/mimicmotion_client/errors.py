"""The client's one exception type, ``MimicMotionError``, and the subclasses a caller may want to catch apart.

Every failure the client raises carries ``status`` (the HTTP status, None when no answer came back),
``code`` (the gateway's stable error code, or one of the client's own below) and ``message``.
"""

from __future__ import annotations

from typing import Any

# Codes of failures that happen on this side of the wire (no HTTP answer to take a code from).
CONNECTION_ERROR = "connection_error"
WAIT_TIMEOUT = "wait_timeout"
INVALID_INPUT = "invalid_input"
UPLOAD_TOO_LARGE = "upload_too_large"
INVALID_WEBHOOK = "invalid_webhook_signature"
DOWNLOAD_MISMATCH = "download_mismatch"


class MimicMotionError(Exception):
    """A request failed, or a job could not be used as asked.

    Example:
        >>> try:
        ...     client.get("no-such-job")
        ... except MimicMotionError as error:
        ...     print(error.status, error.code, error.message)
        404 not_found job no-such-job not found
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: str = "error", details: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def __str__(self) -> str:
        prefix = f"HTTP {self.status} " if self.status is not None else ""
        return f"{prefix}[{self.code}] {self.message}"


class AuthenticationError(MimicMotionError):
    """401: the API key is missing or not accepted."""


class NotFoundError(MimicMotionError):
    """404: no such job or upload (or another key's)."""


class ConflictError(MimicMotionError):
    """409: e.g. canceling a finished job, or an Idempotency-Key reused with another body."""


class InvalidRequestError(MimicMotionError):
    """400, 413, 415 or 422: the gateway refused what was sent; ``details`` names the fields."""


class RateLimitError(MimicMotionError):
    """429, after the client's retries ran out."""


class ServiceUnavailableError(MimicMotionError):
    """503 (or 502/504), after the client's retries ran out."""


class APIConnectionError(MimicMotionError):
    """No answer came back (refused, reset, timed out), after the client's retries ran out."""


class UploadTooLargeError(InvalidRequestError):
    """A file over the upload limit: raised before sending when the limit is known, else the gateway's 413."""


class WaitTimeoutError(MimicMotionError):
    """``wait``/``run`` gave up waiting; the job itself keeps running."""


class JobFailedError(MimicMotionError):
    """``run`` finished with a job that failed or was canceled; ``job`` is that job."""

    def __init__(self, job: Any) -> None:
        error = job.error
        code = error.code if error is not None else str(job.status)
        message = error.message if error is not None else f"job {job.id} was {job.status}"
        super().__init__(message, code=code)
        self.job = job


class WebhookVerificationError(MimicMotionError):
    """A webhook's signature, timestamp or headers do not check out: do not trust its body."""


_BY_STATUS: dict[int, type[MimicMotionError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: UploadTooLargeError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def error_for_status(status: int, body: Any, fallback_text: str) -> MimicMotionError:
    """The exception for an HTTP error answer with the gateway's ``{"error": {"code", "message"}}`` body."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code, message = error["code"], str(error.get("message", ""))
        details = error.get("details") if isinstance(error.get("details"), list) else None
    else:  # not our gateway's body (a proxy's HTML page, say): keep the start of it
        code, message, details = f"http_{status}", fallback_text[:300] or f"HTTP {status}", None
    kind = _BY_STATUS.get(status, MimicMotionError)
    return kind(message, status=status, code=code, details=details)
