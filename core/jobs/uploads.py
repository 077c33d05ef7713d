"""Uploads: the records of users' files, who may use them, how many stream at once, and when they expire.

The bytes live in storage under ``upload_key(id)``; this module keeps the record (``mm:upload:{id}``),
the expiry index the sweeper reads (``mm:uploads_expiring``) and each key's uploads in flight. A job that
uses an upload pins it: its expiry moves to at least the job's deadline, so its bytes outlive the job.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis

from core.contract.uploads import Upload, UploadStatus, incoming_key, upload_key
from core.errors import InvalidUploadError, UploadLimitError, UploadNotFoundError
from core.jobs.keys import KeyedRedis
from core.storage import Storage

# The record outlives the upload by this much, so the sweeper still finds its storage key when it runs.
RECORD_SLACK_S = 3600
_MAX_TXN_RETRIES = 50

# Count the owner's live uploads in flight and add this one, in one step (concurrent requests cannot
# overshoot the limit). KEYS[1]: the owner's in-flight set; ARGV: now, until, limit, id.
_BEGIN = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) and not redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
return 1
"""

# Take an expired upload off the index and return its record, unless a job pinned it meanwhile.
# KEYS[1]: the expiry index, KEYS[2]: the record; ARGV: now, id.
_CLAIM_EXPIRED = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not score or tonumber(score) > tonumber(ARGV[1]) then
  return false
end
redis.call('ZREM', KEYS[1], ARGV[2])
local record = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
return record or ''
"""


@dataclass(frozen=True)
class ExpiredUpload:
    id: str
    record: Upload | None  # None when the record had gone already


class Uploads:
    """Upload records in the Redis of ``db``."""

    def __init__(self, db: KeyedRedis) -> None:
        self._redis = db.client
        self._keys = db.keys
        self._begin = self._redis.register_script(_BEGIN)
        self._claim_expired = self._redis.register_script(_CLAIM_EXPIRED)

    # In flight
    def begin(self, owner: str, upload_id: str, *, until: datetime, limit: int) -> None:
        """Count ``upload_id`` among the owner's uploads in flight until ``until`` (or ``end``).

        Raises:
            UploadLimitError: the owner has ``limit`` uploads in flight already.
        """
        args: list[str | float] = [time.time(), until.timestamp(), limit, upload_id]
        if not self._begin(keys=[self._keys.uploads_in_flight(owner)], args=args):
            raise UploadLimitError(
                f"you have {limit} uploads in flight; the limit per API key is {limit}: wait for one to finish"
            )

    def end(self, owner: str, upload_id: str) -> None:
        self._redis.zrem(self._keys.uploads_in_flight(owner), upload_id)

    # Records
    def save(self, upload: Upload) -> Upload:
        """Store (or replace) the record and index its expiry."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.upload(upload.id), upload.model_dump_json(), ex=_record_ttl_s(upload))
            pipe.zadd(self._keys.uploads_expiring, {upload.id: upload.expires_at.timestamp()})
            pipe.execute()
        return upload

    def get(self, upload_id: str, *, owner: str | None = None, deleted: bool = False) -> Upload:
        """The upload; one that expired, was deleted (unless ``deleted``) or is another ``owner``'s is not found."""
        raw = cast(str | None, self._redis.get(self._keys.upload(upload_id)))
        if raw is None:
            raise UploadNotFoundError(f"no upload {upload_id}")
        upload = Upload.model_validate_json(raw)
        gone = upload.expires_at <= datetime.now(UTC) or (upload.status is UploadStatus.deleted and not deleted)
        if (owner is not None and upload.owner != owner) or gone:
            raise UploadNotFoundError(f"no upload {upload_id}")
        return upload

    def mark_deleted(self, upload: Upload) -> None:
        """Keep a tombstone until the upload would have expired; the sweeper no longer needs to visit it."""
        deleted = upload.model_copy(update={"status": UploadStatus.deleted})
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.upload(upload.id), deleted.model_dump_json(), ex=_record_ttl_s(upload))
            pipe.zrem(self._keys.uploads_expiring, upload.id)
            pipe.zrem(self._keys.uploads_in_flight(upload.owner), upload.id)
            pipe.execute()

    def pin(self, upload_id: str, *, owner: str, until: datetime) -> Upload:
        """Keep a ready upload of ``owner`` at least until ``until`` (a job's deadline); return it.

        Raises:
            UploadNotFoundError: unknown, expired, deleted or another owner's.
            InvalidUploadError: its direct upload was never completed.
        """
        key = self._keys.upload(upload_id)
        for _ in range(_MAX_TXN_RETRIES):
            with self._redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    upload = self.get(upload_id, owner=owner)
                    if upload.status is not UploadStatus.ready:
                        raise InvalidUploadError(
                            f"upload {upload_id} is not complete: send its bytes to its upload URL, then POST "
                            f"/uploads/{upload_id}/complete"
                        )
                    if upload.expires_at < until:
                        upload = upload.model_copy(update={"expires_at": until})
                    pipe.multi()
                    pipe.set(key, upload.model_dump_json(), ex=_record_ttl_s(upload))
                    # GT: never move an expiry earlier (two jobs pinning the same upload).
                    pipe.zadd(self._keys.uploads_expiring, {upload_id: upload.expires_at.timestamp()}, gt=True)
                    pipe.execute()
                    return upload
                except redis.WatchError:
                    continue
        raise RuntimeError(f"upload {upload_id}: too much contention, gave up after {_MAX_TXN_RETRIES} tries")

    # Expiry
    def claim_expired(self, *, now: float | None = None, limit: int = 100) -> list[ExpiredUpload]:
        """Take up to ``limit`` expired uploads off the index (each taken by one caller only); their bytes
        are the caller's to delete."""
        now = time.time() if now is None else now
        due = cast(list[str], self._redis.zrangebyscore(self._keys.uploads_expiring, "-inf", now, start=0, num=limit))
        claimed = []
        for upload_id in due:
            raw = self._claim_expired(keys=[self._keys.uploads_expiring, self._keys.upload(upload_id)],
                                      args=[now, upload_id])  # fmt: skip
            if raw is None:
                continue  # pinned again, or another sweeper took it
            claimed.append(ExpiredUpload(upload_id, Upload.model_validate_json(raw) if raw else None))
        return claimed


def _record_ttl_s(upload: Upload) -> int:
    return max(1, int(upload.expires_at.timestamp() - time.time())) + RECORD_SLACK_S


def sweep_expired_uploads(uploads: Uploads, storage: Storage, *, now: float | None = None) -> list[str]:
    """Delete the bytes of uploads past their expiry (pending ones never completed too); return their ids.

    Run by every worker's reaper; each expired upload is claimed by one sweeper only.
    """
    swept = []
    for expired in uploads.claim_expired(now=now):
        storage.delete(incoming_key(expired.id))
        storage.delete(upload_key(expired.id))
        swept.append(expired.id)
    return swept
