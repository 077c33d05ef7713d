"""Typed failures. Each has a stable ``code`` that the API and job records expose to users.

This module imports nothing heavy: the gateway uses it without torch.
"""

from typing import ClassVar


class MimicMotionError(Exception):
    """Base of every expected failure; ``message`` is written for the user who can act on it."""

    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelFilesError(MimicMotionError):
    """A model-directory file is missing or malformed; the message names the file."""

    code = "model_files_invalid"


class MediaError(MimicMotionError):
    """An input image or video cannot be used."""

    code = "invalid_media"


class NotAnImageError(MediaError):
    code = "input_not_image"


class NotAVideoError(MediaError):
    code = "input_not_video"


class InputTooLargeError(MediaError):
    code = "input_too_large"


class NoPersonError(MimicMotionError):
    """No usable person in the reference image or the driving video."""

    code = "no_person_detected"


class JobCanceledError(MimicMotionError):
    """Raised between denoising steps when the caller asked to stop."""

    code = "canceled"


class JobTimeoutError(MimicMotionError):
    """The job passed its deadline (its timeout_s, or the server's maximum) before it finished."""

    code = "timeout"


class ConfigurationError(MimicMotionError):
    """A setting cannot be honoured on this machine (e.g. device cuda without a GPU)."""

    code = "invalid_configuration"


class JobNotFoundError(MimicMotionError):
    """No such job, or it belongs to another API key (the two are not told apart)."""

    code = "not_found"


class InvalidCursorError(MimicMotionError):
    """A job listing's cursor is not one that this API returned."""

    code = "invalid_cursor"


class StorageError(MimicMotionError):
    """Result storage (S3 or the local results directory) failed; never a problem with the inputs."""

    code = "storage_error"


class InputFetchError(MimicMotionError):
    """An input URL could not be downloaded; subclasses say why."""

    code = "input_unreachable"


class UnsupportedUrlError(InputFetchError):
    """The URL's scheme or form is not accepted (only plain http/https URLs are)."""

    code = "unsupported_url"


class ForbiddenAddressError(InputFetchError):
    """The URL's host resolves to a private, loopback, link-local or otherwise non-public address."""

    code = "forbidden_address"


class InputUnreachableError(InputFetchError):
    """DNS failure, refused connection, timeout, non-2xx answer or too many redirects."""

    code = "input_unreachable"


class IdempotencyConflictError(MimicMotionError):
    """The Idempotency-Key was used with another body, or its first request is still being handled."""

    code = "idempotency_conflict"


class QueueLimitError(MimicMotionError):
    """The caller already has as many queued jobs as one API key may have."""

    code = "too_many_queued_jobs"
    retry_after_s = 30  # a job takes minutes; asking again sooner only adds load


class UploadNotFoundError(JobNotFoundError):
    """No such upload, or it expired, was deleted or belongs to another API key (not told apart)."""

    code = "not_found"


class UploadTooLargeError(MimicMotionError):
    """An upload passed the byte cap; refused while it streams."""

    code = "upload_too_large"


class UnsupportedMediaTypeError(MimicMotionError):
    """An upload is neither an image nor a video we accept; the message names what it looks like."""

    code = "unsupported_media_type"


class InvalidUploadError(MimicMotionError):
    """An upload cannot be used: empty, not as declared, not completed, or not decodable."""

    code = "invalid_upload"


class UploadLimitError(MimicMotionError):
    """The caller already has as many uploads in flight as one API key may have."""

    code = "too_many_uploads"
    retry_after_s = 5  # an upload in flight ends within seconds to minutes
