"""The Python client of the MimicMotion inference service (``pip install mimicmotion-client``; needs httpx only).

Example:
    >>> from mimicmotion_client import Client
    >>> client = Client("https://mimicmotion.example.com", api_key="...")  # or $MIMICMOTION_URL, $MIMICMOTION_API_KEY
    >>> job = client.run("person.png", "dance.mp4", params={"seed": 42}, on_progress=print)
    >>> client.download(job, "result.mp4")
"""

from mimicmotion_client.async_client import AsyncClient
from mimicmotion_client.client import Client
from mimicmotion_client.errors import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    JobFailedError,
    MimicMotionError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    UploadTooLargeError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from mimicmotion_client.retry import RetryPolicy
from mimicmotion_client.types import (
    Event,
    Job,
    JobError,
    JobOutput,
    JobPage,
    ModelInfo,
    Progress,
    Upload,
    UploadTarget,
    WebhookEvent,
)
from mimicmotion_client.version import __version__
from mimicmotion_client.webhooks import verify_webhook

__all__ = [
    "APIConnectionError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "Event",
    "InvalidRequestError",
    "Job",
    "JobError",
    "JobFailedError",
    "JobOutput",
    "JobPage",
    "MimicMotionError",
    "ModelInfo",
    "NotFoundError",
    "Progress",
    "RateLimitError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "Upload",
    "UploadTarget",
    "UploadTooLargeError",
    "WaitTimeoutError",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "verify_webhook",
]
