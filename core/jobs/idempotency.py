"""Idempotency-Key records: the same key and request give the same job; another request is a conflict.

Keys are scoped to the caller and kept 24 hours (Stripe's semantics). A record maps the key to the
job id and a fingerprint of the request, which the caller computes from its parsed body.
"""

import hashlib
import json

from core.errors import IdempotencyConflictError
from core.jobs.store import JobStore

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class IdempotencyRecords:
    """Key -> job records, next to the jobs in the store's Redis."""

    def __init__(self, store: JobStore) -> None:
        self.store = store

    def _key(self, owner: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return f"{self.store.prefix}:idempotency:{owner}:{digest}"

    def claim(self, owner: str, idempotency_key: str, request_print: str, job_id: str) -> str:
        """Bind the key to ``job_id`` and return it, or return the job the key is already bound to.

        Raises:
            IdempotencyConflictError: the key was first used with a different request.
        """
        key = self._key(owner, idempotency_key)
        record = json.dumps({"job_id": job_id, "fingerprint": request_print})
        for _ in range(3):
            if self.store.redis.set(key, record, nx=True, ex=IDEMPOTENCY_TTL_S):
                return job_id
            raw = self.store.redis.get(key)
            if raw is None:  # expired between the two calls: try to bind it again
                continue
            existing = json.loads(raw)
            if existing["fingerprint"] != request_print:
                raise IdempotencyConflictError("this Idempotency-Key was used with a different request body")
            return str(existing["job_id"])
        raise IdempotencyConflictError("this Idempotency-Key is changing hands; retry the request")

    def release(self, owner: str, idempotency_key: str) -> None:
        """Forget the key, so a retry after a failed hand-off creates a job."""
        self.store.redis.delete(self._key(owner, idempotency_key))
