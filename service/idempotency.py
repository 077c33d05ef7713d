"""The request fingerprint behind Idempotency-Key (the records themselves live in core.jobs.idempotency)."""

import hashlib

from service.schemas import JobCreate


def fingerprint(body: JobCreate) -> str:
    """A digest of the parsed body, defaults filled in, so equivalent JSON gives the same print."""
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()
