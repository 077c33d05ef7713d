"""An upload as stored: a user's file in our storage, named ``upload://<id>`` in a job's inputs. Torch-free.

A multipart upload is ``ready`` once its bytes are stored and checked. A direct (presigned) upload is
``pending`` until the client has sent its bytes and asked for them to be checked; only a ``ready`` upload
may be a job's input.
"""

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from core.contract.records import utc_now

UPLOAD_SCHEME = "upload://"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class UploadStatus(StrEnum):
    pending = "pending"  # created for a direct upload; its bytes are not checked yet
    ready = "ready"  # stored and checked: a job may use it
    deleted = "deleted"  # its bytes are gone; the record stays until it expires, so a repeated DELETE is a 204


class MediaKind(StrEnum):
    image = "image"
    video = "video"


class Upload(BaseModel):
    id: str
    owner: str = Field(description="Identifies the API key that made the upload (a hash, never the key).")
    status: UploadStatus
    key: str = Field(description="Where the bytes are in storage.")
    filename: str | None = None
    declared_content_type: str | None = Field(default=None, description="What the client said, for direct uploads.")
    content_type: str | None = Field(default=None, description="Sniffed from the bytes once checked.")
    kind: MediaKind | None = None
    size_bytes: int = Field(description="Declared (pending) or stored (ready) size.")
    sha256: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    expires_at: datetime
    upload_url_expires_at: datetime | None = Field(default=None, description="End of a direct upload's PUT URL.")

    @property
    def url(self) -> str:
        return upload_url(self.id)


def upload_url(upload_id: str) -> str:
    return f"{UPLOAD_SCHEME}{upload_id}"


def upload_id_of(url: str) -> str | None:
    """The id in an ``upload://<id>`` URL; None for any other URL. ValueError for a malformed upload URL."""
    if not url.startswith(UPLOAD_SCHEME):
        return None
    upload_id = url[len(UPLOAD_SCHEME) :]
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError(f"{UPLOAD_SCHEME}<id> needs the 32-hex-digit id that POST /uploads returned")
    return upload_id


def upload_key(upload_id: str) -> str:
    """The storage key of an upload's checked bytes (the only ones a worker reads)."""
    return f"uploads/{upload_id}"


def incoming_key(upload_id: str) -> str:
    """The storage key a direct upload's client PUTs to, before the bytes are checked."""
    return f"incoming/{upload_id}"


class MediaInfo(BaseModel):
    """What checking an upload found: the sniffed type and the picture's size (and a video's length)."""

    kind: MediaKind
    content_type: str
    width: int
    height: int
    duration_s: float | None = None
    fps: float | None = None
