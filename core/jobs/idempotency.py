"""Idempotency-Key records: the same key and request give the same job; another request is a conflict.

Keys are scoped to the caller and kept 24 hours (Stripe's semantics). A record maps the key to the
job id and a fingerprint of the request, which the caller computes from its parsed body.
"""

import json

from core.errors import IdempotencyConflictError
from core.jobs.keys import KeyedRedis

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class IdempotencyRecords:
    """Key -> job records, next to the jobs in the store's Redis."""

    def __init__(self, db: KeyedRedis) -> None:
        self.db = db

    def claim(self, owner: str, idempotency_key: str, request_print: str, job_id: str) -> str:
        """Bind the key to ``job_id`` and return it, or return the job the key is already bound to.

        Raises:
            IdempotencyConflictError: the key was first used with a different request.
        """
        key = self.db.keys.idempotency(owner, idempotency_key)
        record = json.dumps({"job_id": job_id, "fingerprint": request_print})
        for _ in range(3):
            if self.db.client.set(key, record, nx=True, ex=IDEMPOTENCY_TTL_S):
                return job_id
            raw = self.db.client.get(key)
            if raw is None:  # expired between the two calls: try to bind it again
                continue
            existing = json.loads(raw)
            if existing["fingerprint"] != request_print:
                raise IdempotencyConflictError("this Idempotency-Key was used with a different request body")
            return str(existing["job_id"])
        raise IdempotencyConflictError("this Idempotency-Key is changing hands; retry the request")

    def release(self, owner: str, idempotency_key: str) -> None:
        """Forget the key, so a retry after a failed hand-off creates a job."""
        self.db.client.delete(self.db.keys.idempotency(owner, idempotency_key))
