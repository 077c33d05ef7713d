"""Store a job's result files, retrying storage faults with exponential backoff.

All or nothing: either every file is stored, or the ones stored before the failure are deleted
again (best effort) and one ``StorageError`` says what failed. No Celery, no torch here.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import StorageError
from core.storage import Storage, StoredObject

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultFile:
    key: str
    path: Path
    content_type: str


def upload_results(
    storage: Storage,
    files: Sequence[ResultFile],
    *,
    attempts: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    already_stored: Sequence[StoredObject] = (),
) -> list[StoredObject]:
    """Put every file; a failed put is tried ``attempts`` times in all, waiting backoff_s, 2*backoff_s, ...

    ``already_stored`` are the result's files stored earlier (the pose video): removed too on failure.

    Raises:
        StorageError: a file could not be stored in ``attempts`` tries (earlier files are removed again).
    """
    stored: list[StoredObject] = []
    for file in files:
        try:
            stored.append(_put_with_retries(storage, file, attempts, backoff_s, sleep))
        except StorageError as exc:
            _remove(storage, [*already_stored, *stored])
            raise StorageError(
                f"storing the results failed after {attempts} tries ({exc.message}); "
                "the result storage is unavailable, submit the job again later"
            ) from exc
    return stored


def _put_with_retries(
    storage: Storage, file: ResultFile, attempts: int, backoff_s: float, sleep: Callable[[float], None]
) -> StoredObject:
    for attempt in range(1, attempts + 1):
        try:
            return storage.put_file(file.key, file.path, file.content_type)
        except StorageError as exc:
            if attempt == attempts:
                raise
            wait_s = backoff_s * 2 ** (attempt - 1)
            logger.warning("upload of %s failed (try %d of %d), again in %.1f s: %s", file.key, attempt, attempts,
                           wait_s, exc.message)  # fmt: skip
            sleep(wait_s)
    raise AssertionError("unreachable: attempts >= 1")


def _remove(storage: Storage, stored: Sequence[StoredObject]) -> None:
    # A half-stored result is never recorded as output; removing it keeps the bucket honest too.
    for item in stored:
        try:
            storage.delete(item.key)
        except StorageError as exc:
            logger.warning("could not remove partial result %s: %s", item.key, exc.message)
