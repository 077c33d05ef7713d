"""Idempotency-Key for POST /jobs: the same key and body give the same job; another body is a 409.

Keys are scoped to the caller and kept 24 hours (Stripe's semantics). The record maps the key to
the job id and a fingerprint of the parsed body.
"""

import hashlib
import json
from dataclasses import dataclass

from core.errors import MimicMotionError
from core.jobs.store import JobStore
from service.schemas import JobCreate

IDEMPOTENCY_TTL_S = 24 * 3600
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class IdempotencyConflictError(MimicMotionError):
    """The key was used with another body, or its first request is still being handled."""

    code = "idempotency_conflict"


def fingerprint(body: JobCreate) -> str:
    """A digest of the parsed body, defaults filled in, so equivalent JSON gives the same print."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class IdempotencyRecords:
    """Key -> job records next to the jobs (a JobStore method would be their proper home)."""

    store: JobStore

    def _key(self, owner: str, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
        return f"{self.store.prefix}:idempotency:{owner}:{digest}"

    def claim(self, owner: str, idempotency_key: str, body_print: str, job_id: str) -> str:
        """Bind the key to ``job_id`` and return it, or return the job the key is already bound to.

        Raises:
            IdempotencyConflictError: the key was first used with a different body.
        """
        key = self._key(owner, idempotency_key)
        record = json.dumps({"job_id": job_id, "fingerprint": body_print})
        if self.store.redis.set(key, record, nx=True, ex=IDEMPOTENCY_TTL_S):
            return job_id
        raw = self.store.redis.get(key)
        if raw is None:  # expired between the two calls: treat as first use
            return self.claim(owner, idempotency_key, body_print, job_id)
        existing = json.loads(raw)
        if existing["fingerprint"] != body_print:
            raise IdempotencyConflictError("this Idempotency-Key was used with a different request body")
        return str(existing["job_id"])

    def release(self, owner: str, idempotency_key: str) -> None:
        """Forget the key, so a retry after a failed hand-off creates a job."""
        self.store.redis.delete(self._key(owner, idempotency_key))
